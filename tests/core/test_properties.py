"""Property tests (hypothesis) for payload building, reply mapping and the SSE decoder."""

from __future__ import annotations

import copy
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aix_jupyter import ModelResponse, ResponseStatus
from aix_jupyter.core.polling import MIN_WAIT, PollSchedule
from aix_jupyter.core.protocol import RawReply, build_payload, map_poll_reply, map_run_reply
from aix_jupyter.core.streaming import SSEDecoder

keys = st.text(min_size=1, max_size=8)
scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)
data_strategy = st.text() | st.dictionaries(keys, json_values, max_size=5) | json_values.map(json.dumps)
params_strategy = st.none() | st.dictionaries(keys, json_values, max_size=5)
core_settings = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


@core_settings
@given(data=data_strategy, params=params_strategy, stream=st.booleans())
def test_payload_is_json_never_mutates_and_parameters_win(data, params, stream):
    before = copy.deepcopy((data, params))
    body = build_payload(data, params, stream)
    assert (data, params) == before
    assert isinstance(body, dict)
    assert json.loads(json.dumps(body)) == body
    for key, value in (params or {}).items():
        if key != "options" or not stream:
            assert body[key] == value
    if stream:
        assert body["options"]["stream"] is True


@core_settings
@given(text=st.text())
def test_plain_text_is_sent_as_data(text):
    try:
        parsed = json.loads(text)
    except ValueError:
        assert build_payload(text) == {"data": text}
        return
    body = build_payload(text)
    if isinstance(parsed, dict):
        assert body == parsed
    elif isinstance(parsed, bool | int | float):
        assert body == {"data": text}
    else:
        assert body == {"data": parsed}


statuses = st.sampled_from(["SUCCESS", "FAILED", "IN_PROGRESS", "success", "weird", "", None, 3])
bodies = st.fixed_dictionaries(
    {},
    optional={
        "status": statuses,
        "completed": st.booleans() | st.none(),
        "data": json_values,
        "error_message": st.text(max_size=30),
        "error": st.text(max_size=30),
        "supplierError": st.text(max_size=30),
        "error_code": st.none() | st.text(max_size=5) | st.integers(),
        "usedCredits": st.floats(0, 10),
        "extra": json_values,
    },
)
raw_bodies = bodies.map(lambda b: json.dumps(b).encode()) | st.binary(max_size=40)
replies = st.builds(
    RawReply,
    st.sampled_from([200, 201, 202, 204, 400, 401, 404, 429, 500, 502, 503]),
    st.just({}),
    raw_bodies,
)


def _check(response):
    assert isinstance(response, ModelResponse)
    assert isinstance(response.status, ResponseStatus)
    if response.status is ResponseStatus.FAILED:
        assert response.error_message and "\n" not in response.error_message
        assert len(response.error_message) <= 500


@core_settings
@given(reply=replies)
def test_run_reply_mapping_is_total(reply):
    response = map_run_reply(reply)
    _check(response)
    if response.status is ResponseStatus.IN_PROGRESS:
        assert response.url and response.url.startswith(("http://", "https://"))
    if not 200 <= reply.status_code < 300:
        assert response.status is ResponseStatus.FAILED


@core_settings
@given(reply=replies)
def test_poll_reply_mapping_is_total_and_never_hangs(reply):
    response = map_poll_reply(reply)
    _check(response)
    # a poll loop continues only on IN_PROGRESS, which needs a 2xx object saying so
    if response.status is ResponseStatus.IN_PROGRESS:
        body = json.loads(reply.content)
        assert 200 <= reply.status_code < 300
        assert body.get("completed") is False or str(body.get("status")).upper() == "IN_PROGRESS"
        assert body.get("error_code") in (None, "", 0)


@core_settings
@given(body=bodies, code=st.text(min_size=1, max_size=5) | st.integers(1, 999))
def test_error_code_always_fails(body, code):
    body = {**body, "error_code": code}
    for mapper in (map_run_reply, map_poll_reply):
        response = mapper(RawReply(200, {}, json.dumps(body).encode()))
        assert response.status is ResponseStatus.FAILED and response.error_code == body["error_code"]


chunk_texts = st.lists(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=12), max_size=20)


@core_settings
@given(
    chunks=chunk_texts,
    cuts=st.lists(st.integers(0, 10_000), max_size=30),
    newline=st.sampled_from([b"\n", b"\r\n", b"\r"]),
)
def test_sse_decoding_does_not_depend_on_how_the_bytes_arrive(chunks, cuts, newline):
    stream = (
        b"".join(b"data: " + json.dumps({"data": c}).encode() + newline + newline for c in chunks)
        + b"data: [DONE]"
        + newline
        + newline
    )
    points = sorted({min(c, len(stream)) for c in cuts})
    pieces = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    decoder = SSEDecoder()
    payloads = [p for piece in pieces for p in decoder.feed(piece)] + decoder.flush()
    assert payloads == [json.dumps({"data": c}).encode() for c in chunks] + [b"[DONE]"]


@given(
    wait=st.floats(0, 10),
    timeout=st.floats(0.5, 1000),
    cap=st.floats(0.2, 30),
    retry=st.lists(st.none() | st.floats(0, 100), min_size=1, max_size=60),
)
@settings(max_examples=200, deadline=None)
def test_poll_schedule_bounds(wait, timeout, cap, retry):
    now = [0.0]
    schedule = PollSchedule(wait, timeout, cap, clock=lambda: now[0])
    for retry_after in retry:
        schedule.observe(elapsed=0.0)
        delay = schedule.next_delay(retry_after)
        if delay is None:
            break
        assert 0 <= delay <= max(cap, MIN_WAIT) * 1.2 + 1e-9 or retry_after is not None
        now[0] += delay
        assert now[0] <= timeout + 1e-9  # never sleeps past the deadline
        hold = schedule.hold()
        assert hold is None or 1 <= hold <= timeout


@core_settings
@given(
    texts=st.lists(st.text(max_size=15).filter(lambda t: t != "[DONE]"), max_size=15), spaced=st.booleans()
)
def test_streamer_fast_path_agrees_with_json(texts, spaced):
    from aix_jupyter import ModelResponseStreamer

    sep = ", " if spaced else ","
    colon = ": " if spaced else ":"
    payloads = [json.dumps({"data": t}, separators=(sep, colon), ensure_ascii=False).encode() for t in texts]
    streamer = ModelResponseStreamer(payloads=iter([payloads, [b"[DONE]"]]))
    chunks = list(streamer)
    assert [c.data for c in chunks[:-1]] == texts
    assert chunks[-1].status is ResponseStatus.SUCCESS and streamer.text == "".join(texts)
