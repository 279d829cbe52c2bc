"""Pure protocol functions: payload building, reply mapping, messages, progress, retry policy."""

from __future__ import annotations

import json
import random
from enum import Enum

import pytest

from aix_jupyter import ResponseStatus
from aix_jupyter.core.errors import ParameterError
from aix_jupyter.core.protocol import (
    GENERIC_FAILURE,
    RawReply,
    build_payload,
    http_error_message,
    map_poll_reply,
    map_run_reply,
    model_kwargs_from_metadata,
    model_path,
    poll_progress,
    retry_after_seconds,
)
from aix_jupyter.core.transport import Call, TransportFailure, retry_delay


def reply(body, status=200, headers=None):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return RawReply(status, headers or {}, content)


class Color(Enum):
    RED = "red"


# -- payloads -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("hello", {"data": "hello"}),
        ('{"text": "a", "n": 1}', {"text": "a", "n": 1}),
        ("42", {"data": "42"}),
        ("1.50", {"data": "1.50"}),  # the caller's text, not str(float)
        ("true", {"data": "true"}),
        ("[1, 2]", {"data": [1, 2]}),
        ("null", {"data": None}),
        ('"quoted"', {"data": "quoted"}),
        ({"data": "x", "k": Color.RED}, {"data": "x", "k": "red"}),
        (7, {"data": 7}),
        (["a", ("b", "c")], {"data": ["a", ["b", "c"]]}),
    ],
)
def test_build_payload_data_forms(data, expected):
    assert build_payload(data) == expected


def test_parameters_merge_over_data_and_enums_become_values():
    body = build_payload({"data": "x", "temperature": 1}, {"temperature": 0.2, "color": Color.RED})
    assert body == {"data": "x", "temperature": 0.2, "color": "red"}


def test_stream_option_merges_options():
    assert build_payload("x", stream=True) == {"data": "x", "options": {"stream": True}}
    assert build_payload({"data": "x", "options": {"a": 1}}, {"options": {"b": 2}}, stream=True) == {
        "data": "x",
        "options": {"a": 1, "b": 2, "stream": True},
    }


def test_empty_dict_data_uses_parameters():
    assert build_payload({}, {"text": "t"}) == {"text": "t"}


@pytest.mark.parametrize("bad", [{"data": {1, 2}}, {"data": float("nan")}, {"data": object()}, {1: "x"}])
def test_unsendable_values_name_the_culprit(bad):
    with pytest.raises(ParameterError) as info:
        build_payload(bad)
    assert "\n" not in str(info.value) and "data" in str(info.value)


def test_unsendable_parameter_names_the_parameter():
    with pytest.raises(ParameterError, match=r"^when: a datetime cannot be sent as JSON"):
        import datetime

        build_payload("x", {"when": datetime.datetime.now()})


# -- messages -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("code", "start"),
    [
        (400, "Bad request"),
        (401, "Unauthorized API key"),
        (402, "Payment required"),
        (403, "Forbidden access"),
        (404, "Resource not found"),
        (429, "Rate limit exceeded"),
        (500, "Internal server error"),
        (503, "Service unavailable"),
        (504, "Gateway timeout"),
        (461, "Subscription-related error"),
        (475, "Billing-related error"),
        (485, "Supplier-related error"),
        (495, "Validation-related error"),
        (418, "Unspecified Client/Server Error (Status 418)"),
        (460, "Subscription-related error"),
        (499, "Validation-related error"),
        (459, "Unspecified Client/Server Error (Status 459)"),
        (502, "Unspecified Client/Server Error (Status 502)"),
    ],
)
def test_http_error_messages(code, start):
    message = http_error_message(code, "why")
    assert message.startswith(start) and message.endswith(" Details: why")
    assert http_error_message(code).startswith(start) and "Details" not in http_error_message(code)


def test_http_failure_details_come_from_error_key():
    response = map_run_reply(reply({"error": "nope", "other": 1}, status=400))
    assert response.status is ResponseStatus.FAILED and response.completed is True
    assert response.error_message.endswith("Details: nope")
    whole = map_run_reply(reply({"x": 1}, status=400))
    assert whole.error_message.endswith("Details: {'x': 1}")


# -- run replies ----------------------------------------------------------------------------------
def test_run_success_keeps_every_field_and_unknown_keys():
    body = {
        "status": "SUCCESS",
        "completed": True,
        "data": "out",
        "usedCredits": 0.05,
        "runTime": 1.2,
        "usage": {"total_tokens": 3},
        "asset": {"assetId": "a"},
        "requestId": "r",
        "details": [1],
    }
    r = map_run_reply(reply(body))
    assert (r.status, r.data, r.used_credits, r.run_time, r.usage, r.asset, r.details) == (
        ResponseStatus.SUCCESS,
        "out",
        0.05,
        1.2,
        {"total_tokens": 3},
        {"assetId": "a"},
        [1],
    )
    assert r["requestId"] == "r" and r.to_dict()["requestId"] == "r"


def test_run_in_progress_and_defaults():
    assert map_run_reply(reply({"status": "IN_PROGRESS", "data": "http://h/p"})).url == "http://h/p"
    assert map_run_reply(reply({"data": "http://h/p"})).status is ResponseStatus.IN_PROGRESS
    assert map_run_reply(reply({"status": "IN_PROGRESS"})).error_message == GENERIC_FAILURE
    assert map_run_reply(reply({"status": "bogus"})).status is ResponseStatus.FAILED
    assert map_run_reply(reply({"status": "success", "data": 1})).status is ResponseStatus.SUCCESS
    failed = map_run_reply(reply({"status": "FAILED"}))
    assert failed.error_message == GENERIC_FAILURE and failed.completed is True


# -- poll replies ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "status", "completed"),
    [
        ({"completed": False}, ResponseStatus.IN_PROGRESS, False),
        ({"completed": False, "status": "IN_PROGRESS", "progress": 0.5}, ResponseStatus.IN_PROGRESS, False),
        ({"completed": True, "data": "x"}, ResponseStatus.SUCCESS, True),
        ({"completed": True, "error_message": "bad"}, ResponseStatus.FAILED, True),
        ({"completed": True, "supplierError": "s"}, ResponseStatus.FAILED, True),
        ({"completed": True, "status": "FAILED", "data": ""}, ResponseStatus.FAILED, True),
        ({"completed": True, "status": "SUCCESS", "error_message": ""}, ResponseStatus.SUCCESS, True),
        ({"status": "SUCCESS", "data": "x"}, ResponseStatus.SUCCESS, True),  # a valid status wins
        ({"data": "x"}, ResponseStatus.FAILED, True),  # neither completed nor status
        ({"completed": False, "error_code": "E"}, ResponseStatus.FAILED, True),
    ],
)
def test_poll_status_rule(body, status, completed):
    r = map_poll_reply(reply(body))
    assert r.status is status and r.completed is completed
    if status is ResponseStatus.FAILED:
        assert r.error_message and "\n" not in r.error_message


def test_error_plus_supplier_error_message():
    r = map_poll_reply(reply({"completed": True, "error": "e", "supplierError": "s"}))
    assert r.error_message == "e - s"


def test_multiline_error_messages_become_one_line():
    r = map_poll_reply(reply({"completed": True, "error_message": "Traceback:\n  line 1\n  boom"}))
    assert r.error_message == "Traceback: line 1 boom"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"progress": 0.25, "eta": 3}, (0.25, 3.0)),
        ({"progress": 40}, (0.4, None)),
        ({"progress": {"done": 3, "total": 4}}, (0.75, None)),
        ({"progress": {"done": 3, "total": 0}}, (None, None)),
        ({"progress": "x", "eta": -1}, (None, 0.0)),
        ({"progress": 1e9}, (1.0, None)),
        ({}, (None, None)),
    ],
)
def test_poll_progress(body, expected):
    assert poll_progress(body) == expected


def test_retry_after_forms():
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds("-2") == 0.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == pytest.approx(10.0)


# -- retry policy ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "status", "retried"),
    [
        ("GET", 429, True),
        ("GET", 502, True),
        ("GET", 503, True),
        ("GET", 504, True),
        ("GET", 500, False),
        ("GET", 404, False),
        ("POST", 429, True),
        ("POST", 503, True),
        ("POST", 502, False),
        ("POST", 504, False),
        ("DELETE", 503, True),
    ],
)
def test_retry_on_status(method, status, retried):
    delay = retry_delay(Call(method, "http://h/x"), 1, reply=RawReply(status), rng=random.Random(1))
    assert (delay is not None) is retried


@pytest.mark.parametrize(
    ("method", "kind", "retried"),
    [
        ("GET", "connect", True),
        ("GET", "timeout", True),
        ("GET", "network", True),
        ("POST", "connect", True),
        ("POST", "timeout", False),
        ("POST", "network", False),
    ],
)
def test_retry_on_transport_errors(method, kind, retried):
    error = TransportFailure("x", kind=kind)
    assert (retry_delay(Call(method, "http://h/x"), 1, error=error) is not None) is retried


def test_retry_limits():
    call = Call("GET", "http://h/x")
    assert retry_delay(call, 3, reply=RawReply(503)) is None  # attempts exhausted
    assert retry_delay(call, 1, reply=RawReply(503, {"retry-after": "7"})) == 7.0
    assert retry_delay(call, 1, reply=RawReply(503, {"retry-after": "7"}), remaining=5) is None
    delays = [
        retry_delay(call, n, reply=RawReply(503), max_attempts=10, rng=random.Random(n)) for n in (1, 2, 3)
    ]
    assert delays[0] < delays[2] <= 4.0


# -- metadata -------------------------------------------------------------------------------------
def test_model_path_quotes_slashes():
    assert model_path("openai/gpt-4") == "sdk/models/openai%2Fgpt-4"


def test_metadata_without_function_or_params():
    kwargs = model_kwargs_from_metadata({"id": "m", "status": "weird", "functionType": "odd"})
    assert kwargs["function"] is None and kwargs["model_params"] == []
    assert kwargs["status"] == "weird" and kwargs["function_type"] == "odd"
    with pytest.raises(ValueError):
        model_kwargs_from_metadata({"name": "no id"})
