"""The public Model / ModelFactory methods: documented, typed, and each async twin the same call."""

from __future__ import annotations

import inspect

import pytest

from aix_jupyter import Model, ModelFactory
from tests.core.conftest import ASYNC_NAMES

PUBLIC = [(Model, n) for n in dir(Model) if not n.startswith("_") and callable(getattr(Model, n))]
PUBLIC += [(ModelFactory, n) for n in ("get", "aget", "list", "alist")]


@pytest.mark.parametrize(("owner", "name"), PUBLIC, ids=[f"{o.__name__}.{n}" for o, n in PUBLIC])
def test_every_public_method_has_a_docstring_and_a_return_type(owner, name):
    method = getattr(owner, name)
    assert inspect.getdoc(method), f"{owner.__name__}.{name} has no docstring"
    returns = inspect.signature(method).return_annotation
    assert returns is not inspect.Signature.empty and returns != "Any", f"{name} -> {returns}"


@pytest.mark.parametrize(("sync", "twin"), [*ASYNC_NAMES.items(), ("get", "aget"), ("list", "alist")])
def test_each_async_twin_takes_the_same_arguments_and_is_a_coroutine(sync, twin):
    owner = ModelFactory if sync in ("get", "list") else Model
    plain, coro = getattr(owner, sync), getattr(owner, twin)
    assert not inspect.iscoroutinefunction(plain) and inspect.iscoroutinefunction(coro)
    assert inspect.signature(plain) == inspect.signature(coro)
    assert f"``{sync}``" in inspect.getdoc(coro)
