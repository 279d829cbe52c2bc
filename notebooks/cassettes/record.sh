#!/usr/bin/env bash
# Record notebooks/cassettes/06_hosted_platform.jsonl again (`make cassette`): the hosted-platform notebook is
# run once against `aix serve` on loopback, its token playing the API key, with AIX_RECORD set, so its
# platform cells go to that server and are recorded. Then the notebook is re-executed in place with no key,
# so that its stored outputs are those of the replay (what nbval checks).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=.venv/bin
CASSETTE=notebooks/cassettes/06_hosted_platform.jsonl
NOTEBOOK=notebooks/06_hosted_platform.ipynb
CONFIG="-u TEAM_API_KEY -u AIXPLAIN_API_KEY -u MODELS_RUN_URL -u BACKEND_URL -u AIX_BACKEND_URL"
CONFIG="$CONFIG -u AIX_CACHE -u AIX_RECORD -u AIX_REPLAY -u AIX_REPLAY_SPEED -u AIX_FRONTEND"
log=$(mktemp)
$BIN/aix serve --port 0 >"$log" 2>/dev/null &
server=$!
trap 'kill $server 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 150); do grep -q "export AIXPLAIN_API_KEY" "$log" && break; sleep 0.2; done
url=$(sed -n 's/^ *export AIX_BACKEND_URL=//p' "$log")
token=$(sed -n 's/^ *export AIXPLAIN_API_KEY=//p' "$log")
[ -n "$url" ] && [ -n "$token" ] || { echo "aix serve did not start" >&2; exit 1; }
rm -f "$CASSETTE"
# shellcheck disable=SC2086
env $CONFIG AIX_RECORD="$PWD/$CASSETTE" AIX_BACKEND_URL="$url" AIXPLAIN_API_KEY="$token" \
  $BIN/jupyter nbconvert --to notebook --execute --output-dir "$(dirname "$log")" --output recorded.ipynb "$NOTEBOOK"
if grep -qF "$token" "$CASSETTE"; then echo "the token is in the cassette: not kept" >&2; rm -f "$CASSETTE"; exit 1; fi
# shellcheck disable=SC2086
env $CONFIG $BIN/jupyter nbconvert --to notebook --execute --inplace --allow-errors "$NOTEBOOK"
echo "recorded $(($(wc -l <"$CASSETTE") - 1)) lines to $CASSETTE against aix serve at $url"
