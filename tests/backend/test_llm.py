"""SmolLM2-135M through the backend: real llama.cpp, real tokens, streamed over SSE."""

from __future__ import annotations

import json
import time

import pytest

from aix_jupyter.backend.models import smollm2

pytestmark = pytest.mark.llm

MODEL = "local/smollm2-135m"


def finish(client, reply: dict) -> dict:
    """Follow the poll URL of a sync run that a slow or busy machine turned into IN_PROGRESS."""
    if reply["status"] != "IN_PROGRESS":
        return reply
    while True:
        body = client.get(reply["data"], headers={"Prefer": "wait=30"}, timeout=60).json()
        if body["completed"]:
            return body


def test_chatml_prompt_builder():
    messages = smollm2.build_messages(
        "Hi!", "Be brief.", history=[{"role": "user", "content": "A"}, {"role": "assistant", "content": "B"}]
    )
    assert smollm2.chatml_prompt(messages) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nA<|im_end|>\n"
        "<|im_start|>assistant\nB<|im_end|>\n"
        "<|im_start|>user\nHi!<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    with pytest.raises(ValueError, match="role"):
        smollm2.build_messages("x", history=[{"role": "robot", "content": "?"}])


def test_weights_ship_in_the_wheel():
    path = smollm2.gguf_path()
    assert path.name == smollm2.GGUF_NAME and path.stat().st_size > 50_000_000
    assert smollm2.available()


def test_sync_run_answers_with_text_and_usage(client):
    body = client.post(
        f"/api/v2/execute/{MODEL}",
        json={
            "data": "What is the capital of France? Answer in one word.",
            "temperature": 0,
            "max_tokens": 24,
        },
        timeout=120,
    ).json()
    body = finish(client, body)
    assert body["status"] == "SUCCESS", body
    assert "Paris" in body["data"]
    usage = body["usage"]
    assert 0 < usage["completion_tokens"] <= 24 and usage["prompt_tokens"] > 10
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_stream_yields_many_token_chunks_and_greedy_is_repeatable(client):
    def stream_once() -> list[str]:
        with client.stream(
            "POST",
            f"/api/v2/execute/{MODEL}",
            json={
                "data": "Name three colours.",
                "temperature": 0,
                "max_tokens": 20,
                "options": {"stream": True},
            },
            timeout=120,
        ) as reply:
            assert reply.status_code == 200
            events = [line[6:] for line in reply.iter_lines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]"
        return [json.loads(e)["data"] for e in events[:-1]]

    first = stream_once()
    assert len(first) >= 5 and "".join(first).strip()
    assert stream_once() == first


def test_system_prompt_and_sdk_context_reach_the_model(client):
    def ask(**extra) -> str:
        body = {"data": "Who are you? Answer in one sentence.", "temperature": 0, "max_tokens": 24, **extra}
        reply = client.post(f"/api/v2/execute/{MODEL}", json=body, timeout=120).json()
        reply = finish(client, reply)
        return reply["data"]

    default = ask()
    assert default.strip() and ask() == default
    pirate = ask(system_prompt="You are Captain Hook, a pirate. Always say Arr.")
    assert pirate != default
    assert ask(context="You are Captain Hook, a pirate. Always say Arr.") == pirate


def test_parameter_bounds_are_checked(client):
    reply = client.post(f"/api/v2/execute/{MODEL}", json={"data": "x", "temperature": 3})
    assert reply.status_code == 490 and reply.json()["parameter"] == "temperature"
    reply = client.post(f"/api/v2/execute/{MODEL}", json={"data": "x", "max_tokens": 1.5})
    assert reply.status_code == 490 and reply.json()["parameter"] == "max_tokens"


def test_poll_shows_token_progress_and_cancel_stops_generation(client, server):
    url = client.post(
        f"/api/v1/execute/{MODEL}", json={"data": "Tell me a very long story.", "max_tokens": 1000}
    ).json()["data"]
    seen = []
    for _ in range(200):
        body = client.get(url).json()
        if body.get("progress"):
            seen.append(body)
        if len(seen) >= 2 or body["completed"]:
            break
        time.sleep(0.05)
    assert seen and seen[-1]["total"] == 1000 and 0 < seen[-1]["progress"] < 1
    assert client.delete(url).json()["cancelled"] is True
    body = client.get(url).json()
    assert body["status"] == "FAILED" and "cancelled" in body["error_message"]
    # the llama context is free again: the next run proceeds at once
    after = client.post(f"/api/v2/execute/{MODEL}", json={"data": "Hi", "max_tokens": 4}, timeout=120).json()
    after = finish(client, after)
    assert after["status"] == "SUCCESS"


def test_llm_threads_default_and_override(monkeypatch):
    monkeypatch.setenv("AIX_LLM_THREADS", "3")
    assert smollm2.llm_threads() == 3
    monkeypatch.delenv("AIX_LLM_THREADS")
    monkeypatch.setattr(smollm2.os, "cpu_count", lambda: 16)
    assert smollm2.llm_threads() == 4
    monkeypatch.setattr(smollm2.os, "cpu_count", lambda: 2)
    assert smollm2.llm_threads() == 1
