"""ModelResponse: fields, dict access with wire aliases, additional fields, to_dict."""

from __future__ import annotations

import pytest

from aix_jupyter import ModelResponse, ResponseStatus


def test_defaults_as_the_sdk():
    r = ModelResponse(ResponseStatus.SUCCESS)
    assert r.to_dict() == {
        "status": ResponseStatus.SUCCESS,
        "data": "",
        "details": {},
        "completed": False,
        "error_message": "",
        "used_credits": 0.0,
        "run_time": 0.0,
        "usage": None,
        "url": None,
        "error_code": None,
        "asset": None,
    }


def test_dict_access_aliases_and_additional_fields():
    r = ModelResponse("SUCCESS", data="x", used_credits=1.5, run_time=2.0, requestId="r")
    assert r.status is ResponseStatus.SUCCESS
    assert r["data"] == "x" and r["usedCredits"] == 1.5 and r["runTime"] == 2.0 and r["requestId"] == "r"
    assert "requestId" in r and "usedCredits" in r and "nope" not in r
    assert r.get("nope", 3) == 3
    r["data"] = "y"
    r["usedCredits"] = 2
    r["requestId"] = "r2"
    assert (r.data, r.used_credits, r["requestId"]) == ("y", 2, "r2")
    with pytest.raises(KeyError):
        r["nope"] = 1
    with pytest.raises(KeyError):
        r["nope"]
    assert r.to_dict()["requestId"] == "r2"


def test_error_and_supplier_error_make_the_message():
    assert ModelResponse("FAILED", error="e").error_message == "e"
    assert ModelResponse("FAILED", error="e", supplierError="s").error_message == "e - s"
    assert ModelResponse("FAILED", error_message="m", error="e").error_message == "m"


def test_repr_is_short_and_equality_by_content():
    r = ModelResponse("SUCCESS", data="z" * 1000)
    assert len(repr(r)) < 300
    assert r == ModelResponse("SUCCESS", data="z" * 1000)
    assert r != ModelResponse("FAILED", data="z" * 1000)
