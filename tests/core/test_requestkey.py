"""The request key: stable where the call is the same, different wherever the call differs."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aix_jupyter.core.config import Endpoints
from aix_jupyter.core.parameters import ModelParameters
from aix_jupyter.core.protocol import run_request
from aix_jupyter.core.requestkey import (
    EMBEDDED_ORIGIN,
    Recorded,
    canonical_json,
    endpoint_origin,
    request_key,
)
from aix_jupyter.core.response import ModelResponse

EP = Endpoints("https://models.example.com/api/v1/execute", "https://platform.example.com", "KEY-1")
SCHEMA = ModelParameters(
    [
        {"name": "text", "required": True, "dataType": "text"},
        {"name": "temperature", "dataType": "number", "defaultValues": [{"value": 0.7}], "minValue": 0},
        {
            "name": "max_tokens",
            "dataType": "number",
            "dataSubType": "integer",
            "defaultValues": [{"value": 64}],
        },
        {"name": "style", "dataType": "label", "availableOptions": [{"value": "a"}, {"value": "b"}]},
    ]
)

texts = st.text(min_size=0, max_size=40)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(texts, inner, max_size=4)),
    max_leaves=12,
)


def key_of(data, parameters=None, *, ep=EP, model="m/1", version="1.0", schema=None):
    return request_key(ep, model, version, run_request(schema, data, parameters), schema).digest


# -- stability --------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=10), json_values, min_size=1, max_size=6), st.randoms())
def test_dict_order_does_not_change_the_key(body, rnd):
    items = list(body.items())
    rnd.shuffle(items)
    assert key_of(dict(items)) == key_of(body)


@settings(max_examples=200, deadline=None)
@given(
    st.floats(allow_nan=False, allow_infinity=False, min_value=0, max_value=2),
    st.sampled_from(["{!r}", "{:.17g}", "{:.17e}", "{:.25g}", "+{!r}", " {!r} "]),
)
def test_float_formatting_does_not_change_the_key(value, form):
    written = form.format(value)  # the same number as text written another way (the magic's options)
    assert key_of("hi", {"temperature": written}, schema=SCHEMA) == key_of(
        "hi", {"temperature": value}, schema=SCHEMA
    )


def test_whole_floats_are_the_integers_they_equal():
    assert key_of("hi", {"temperature": 1.0}, schema=SCHEMA) == key_of(
        "hi", {"temperature": 1}, schema=SCHEMA
    )
    assert canonical_json({"b": 1.0, "a": [2.50, True]}) == '{"a":[2.5,true],"b":1}'


def test_defaults_given_or_not_are_the_same_call():
    plain = key_of("hi", schema=SCHEMA)
    assert key_of("hi", {"temperature": 0.7}, schema=SCHEMA) == plain
    assert key_of("hi", {"max_tokens": 64, "temperature": 0.7}, schema=SCHEMA) == plain
    assert key_of("hi", {"temperature": 0.8}, schema=SCHEMA) != plain


def test_a_stream_and_a_run_of_the_same_call_share_the_key():
    run = request_key(EP, "m", "1", run_request(SCHEMA, "hi", {"style": "a"}), SCHEMA)
    stream = request_key(EP, "m", "1", run_request(SCHEMA, "hi", {"style": "a"}, stream=True), SCHEMA)
    assert run.digest == stream.digest


def test_the_api_key_and_headers_are_not_part_of_the_key():
    other = Endpoints(EP.run_url, EP.backend_url, "ANOTHER-KEY")
    none = Endpoints(EP.run_url, EP.backend_url, None)
    assert key_of("hi", ep=other) == key_of("hi", ep=none) == key_of("hi")
    key = request_key(EP, "m", "1", run_request(None, "hi", None))
    assert "KEY-1" not in json.dumps(key.body) and "KEY-1" not in repr(key)


def test_origin_is_normalised_and_the_embedded_backend_is_one_origin():
    a = endpoint_origin("HTTPS://Models.Example.com/api/v1/execute/")
    assert (
        a
        == endpoint_origin("https://models.example.com:443/api/v1/execute")
        == ("https://models.example.com:443/api/v1/execute")
    )
    e1 = Endpoints("http://127.0.0.1:40001/api/v1/execute", "http://127.0.0.1:40001", "t1", embedded=True)
    e2 = Endpoints("http://127.0.0.1:40999/api/v1/execute", "http://127.0.0.1:40999", "t2", embedded=True)
    assert key_of("hi", ep=e1) == key_of("hi", ep=e2)
    assert request_key(e1, "m", None, run_request(None, "hi", None)).origin == EMBEDDED_ORIGIN


def test_a_local_file_is_keyed_by_its_content_not_its_path(tmp_path):
    a, b, c = tmp_path / "a.wav", tmp_path / "sub-b.wav", tmp_path / "c.wav"
    a.write_bytes(b"RIFF same bytes")
    b.write_bytes(b"RIFF same bytes")
    c.write_bytes(b"RIFF other bytes")
    assert key_of(str(a)) == key_of(str(b))
    assert key_of(str(a)) != key_of(str(c))
    key = request_key(EP, "m", None, run_request(None, str(a), None))
    assert str(tmp_path) not in json.dumps(key.body)
    assert key.body["data"].startswith("sha256:")


# -- sensitivity ------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(texts, texts)
def test_any_change_of_the_input_changes_the_key(x, y):
    if x != y and json.dumps(run_request(None, x, None).body) != json.dumps(run_request(None, y, None).body):
        assert key_of(x) != key_of(y)


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=20), st.text(min_size=1, max_size=20))
def test_any_change_of_the_model_changes_the_key(a, b):
    if a != b:
        assert key_of("hi", model=a) != key_of("hi", model=b)


@settings(max_examples=100, deadline=None)
@given(st.one_of(st.none(), st.text(max_size=8)), st.one_of(st.none(), st.text(max_size=8)))
def test_any_change_of_the_version_changes_the_key(a, b):
    if a != b:
        assert key_of("hi", version=a) != key_of("hi", version=b)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["temperature", "max_tokens", "style"]),
    st.data(),
)
def test_any_change_of_a_parameter_changes_the_key(name, data):
    values = {
        "temperature": st.floats(min_value=0, max_value=5, allow_nan=False),
        "max_tokens": st.integers(1, 4096),
        "style": st.sampled_from(["a", "b"]),
    }[name]
    v1, v2 = data.draw(values), data.draw(values)
    same = SCHEMA[name].check(v1) == SCHEMA[name].check(v2)
    assert (key_of("hi", {name: v1}, schema=SCHEMA) == key_of("hi", {name: v2}, schema=SCHEMA)) == same


@settings(max_examples=200, deadline=None)
@given(json_values, json_values)
def test_different_json_inputs_have_different_keys(x, y):
    if canonical_json(x) != canonical_json(y):
        assert key_of({"data": x}) != key_of({"data": y})


def test_the_origin_changes_the_key():
    other = Endpoints("https://other.example.com/api/v1/execute", "https://other.example.com")
    assert key_of("hi") != key_of("hi", ep=other)


def test_the_key_is_stable_across_processes_by_construction():
    """A fixed call has a fixed digest (sha256 of canonical JSON): no hash seed, no dict order."""
    key = request_key(EP, "m/1", "1.0", run_request(None, "hello", {"b": 2, "a": 1.0}))
    assert key.digest == request_key(EP, "m/1", "1.0", run_request(None, "hello", {"a": 1, "b": 2})).digest
    assert len(key.digest) == 64 and int(key.digest, 16) >= 0
    assert key.input == "hello"


# -- Recorded ---------------------------------------------------------------------------------


def test_recorded_round_trips_a_response_and_a_stream():
    response = ModelResponse(
        "SUCCESS", data={"x": [1, 2]}, completed=True, used_credits=0.25, run_time=1.5, extra=1
    )
    key = request_key(EP, "m", None, run_request(None, "hi", None))
    rec = Recorded.of(response, key, [(0.0, "a"), (0.01, "b")])
    back = Recorded.from_json(json.loads(json.dumps(rec.to_json())))
    assert back.to_response() == response
    assert back.to_response() is not back.to_response()
    assert back.chunks == [(0.0, "a"), (0.01, "b")] and back.text() == "ab"
    assert back.credits == 0.25 and back.ok
    with pytest.raises(ValueError):
        Recorded.from_json({"response": {"data": 1}})
    with pytest.raises(ValueError):
        Recorded.from_json({"response": {"status": "SUCCESS"}, "chunks": [["x"]]})


def test_random_bodies_are_canonical_whatever_their_order():
    rnd = random.Random(7)
    body = {f"k{i}": rnd.random() for i in range(50)}
    shuffled = dict(sorted(body.items(), key=lambda _: rnd.random()))
    assert canonical_json(body) == canonical_json(shuffled)
