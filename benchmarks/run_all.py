"""Run every benchmark, one after another, then refresh the table in benchmarks/README.md.

    python3.11 benchmarks/setup_compare.py          # once: the comparison venv
    python3.11 benchmarks/run_all.py [--quick] [--only startup,sse,...]

Each script also runs alone (its command is in the README). The runner uses the project's venv
(.venv) for every script; the scripts start the comparison venv's interpreter themselves. A script
that fails is reported and the others still run; its previous figures stay in results/ and are marked
with their own date in the README.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from common import BENCH, OUR_PY, ROOT

SCRIPTS = {
    "startup": "bench_startup.py",
    "run_overhead": "bench_run_overhead.py",
    "poll_lag": "bench_poll_lag.py",
    "sse": "bench_sse.py",
    "widget": "bench_widget.py",
    "tokens": "bench_tokens.py",
    "backend_rps": "bench_backend_rps.py",
    "batch": "bench_batch.py",
    "batch_progress": "bench_batch_progress.py",
    "cache": "bench_cache.py",
    "llm": "bench_llm.py",
    "media_models": "bench_media_models.py",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="pass --quick to every script")
    parser.add_argument("--only", default="", help="comma-separated names: " + ",".join(SCRIPTS))
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n] or list(SCRIPTS)
    unknown = [n for n in names if n not in SCRIPTS]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {list(SCRIPTS)}")
    failed: list[str] = []
    for name in names:
        cmd = [str(OUR_PY), str(BENCH / SCRIPTS[name]), *(["--quick"] if args.quick else [])]
        print(f"== {name}: {' '.join(cmd)}", flush=True)
        t0 = time.monotonic()
        proc = subprocess.run(cmd, cwd=str(ROOT), timeout=1800, check=False)
        print(f"== {name}: exit {proc.returncode} in {time.monotonic() - t0:.0f} s", flush=True)
        if proc.returncode != 0:
            failed.append(name)
    subprocess.run([sys.executable, str(BENCH / "render.py")], check=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
