"""The aiXplain wire served by the backend: real uvicorn on loopback, real models, a real HTTP client."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from aix_jupyter.backend import embedded

from .conftest import CLOSED, TOKEN, start_server, wait_for


def run_v1(client: httpx.Client, model_id: str, body: dict) -> str:
    reply = client.post(f"/api/v1/execute/{model_id}", json=body)
    assert reply.status_code == 200, reply.text
    data = reply.json()
    assert data["status"] == "IN_PROGRESS" and data["completed"] is False
    assert data["data"].startswith("http://127.0.0.1:")
    return data["data"]


def run_v2(client: httpx.Client, model_id: str, body: dict) -> dict:
    """A synchronous run; a busy machine may turn it into IN_PROGRESS + poll URL, which is followed."""
    reply = client.post(f"/api/v2/execute/{model_id}", json=body)
    assert reply.status_code == 200, reply.text
    data = reply.json()
    return poll_until_done(client, data["data"]) if data["status"] == "IN_PROGRESS" else data


def poll_until_done(client: httpx.Client, url: str, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(url, headers={"Prefer": "wait=5"}).json()
        if body["completed"]:
            return body
    raise AssertionError(f"{url} did not finish")


# -- security ---------------------------------------------------------------------------------------------
def test_requests_without_the_token_get_401_json(server):
    for headers in ({}, {"x-api-key": "wrong"}, {"Authorization": "Token wrong"}, {"Authorization": TOKEN}):
        reply = httpx.post(
            f"{server.base_url}/api/v2/execute/local/sentiment-vader", json={"data": "hi"}, headers=headers
        )
        assert reply.status_code == 401
        body = reply.json()
        assert body["statusCode"] == 401 and "token" in body["error"].lower()
        assert TOKEN not in reply.text


def test_token_accepted_in_each_header_form(server):
    for headers in (
        {"x-api-key": TOKEN},
        {"Authorization": f"Token {TOKEN}"},
        {"Authorization": f"token {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN}"},
    ):
        reply = httpx.get(f"{server.base_url}/sdk/models/local/countdown", headers=headers)
        assert reply.status_code == 200, headers


def test_health_needs_no_token_and_server_binds_loopback(server):
    assert server.host == "127.0.0.1"
    assert httpx.get(f"{server.base_url}/health").json()["status"] == "ok"


# -- catalog ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["local/sentiment-vader", "local%2Fsentiment-vader"])
def test_model_metadata_by_id(client, path):
    meta = client.get(f"/sdk/models/{path}").json()
    assert meta["id"] == "local/sentiment-vader"
    assert meta["function"]["id"] == "sentiment-analysis"
    assert meta["version"]["id"] and meta["supplier"]["name"] and "pricing" in meta
    params = {p["name"]: p for p in meta["params"]}
    assert params["data"]["required"] is True and params["data"]["dataType"] == "text"
    assert params["threshold"]["defaultValues"] == [{"value": 0.05}]
    assert params["threshold"]["minValue"] == 0 and params["threshold"]["maxValue"] == 1


def test_every_builtin_model_has_an_honest_schema(client):
    yake = {p["name"]: p for p in client.get("/sdk/models/local/keywords-yake").json()["params"]}
    assert yake["language"]["dataType"] == "label"
    assert "en" in [o["value"] for o in yake["language"]["availableOptions"]]
    llm = client.get("/sdk/models/local/smollm2-135m").json()
    assert llm["supportsStreaming"] is True and llm["function"]["id"] == "text-generation"
    names = {p["name"] for p in llm["params"]}
    assert {"temperature", "max_tokens", "top_p", "system_prompt"} <= names
    countdown = {p["name"]: p for p in client.get("/sdk/models/local/countdown").json()["params"]}
    assert countdown["fail"]["dataType"] == "boolean"


def test_model_by_name_and_by_ids(client):
    assert client.get("/sdk/models/by-name/VADER Sentiment").json()["id"] == "local/sentiment-vader"
    items = client.get("/sdk/models", params={"ids": "local/countdown,local/keywords-yake,nope"}).json()[
        "items"
    ]
    assert [m["id"] for m in items] == ["local/countdown", "local/keywords-yake"]
    assert client.get("/sdk/models/by-name/no such model").status_code == 404


def test_paginate_filters_by_query_and_function_and_pages(client):
    everything = client.post("/sdk/models/paginate", json={"q": "", "pageNumber": 0, "pageSize": 50}).json()
    ids = [m["id"] for m in everything["items"]]
    assert everything["total"] == len(ids) >= 5
    assert {
        "local/sentiment-vader",
        "local/langid-langdetect",
        "local/keywords-yake",
        "local/smollm2-135m",
    } <= set(ids)
    by_function = client.post("/sdk/models/paginate", json={"functions": ["language-identification"]}).json()
    assert [m["id"] for m in by_function["items"]] == ["local/langid-langdetect"]
    by_query = client.post("/sdk/models/paginate", json={"q": "yake"}).json()
    assert [m["id"] for m in by_query["items"]] == ["local/keywords-yake"]
    page1 = client.post("/sdk/models/paginate", json={"pageNumber": 1, "pageSize": 2}).json()
    assert [m["id"] for m in page1["items"]] == ids[2:4] and page1["total"] == len(ids)
    bad = client.post("/sdk/models/paginate", json={"pageSize": "ten"})
    assert bad.status_code == 400 and "pageSize" in bad.json()["error"]


def test_unknown_model_is_404_json(client):
    for reply in (
        client.get("/sdk/models/local/nope"),
        client.post("/api/v2/execute/local/nope", json={"data": "x"}),
        client.post("/api/v1/execute/local/nope", json={"data": "x"}),
    ):
        assert reply.status_code == 404
        assert "local/nope" in reply.json()["error"]


def test_finetune_logs_of_a_plain_model_is_a_clear_404(client):
    reply = client.get("/sdk/finetune/local/sentiment-vader/ml-logs")
    assert reply.status_code == 404
    body = reply.json()
    assert body["statusCode"] == 404 and "not a fine-tuned model" in body["message"]


def test_delete_registered_model_but_not_builtin(client, server):
    from aix_jupyter.backend.registry import register_model

    @register_model(id="test/temporary", catalog=server.state.catalog)
    def temporary(text: str) -> str:
        return text

    assert run_v2(client, "test/temporary", {"data": "x"})["data"] == "x"
    assert client.delete("/sdk/models/test/temporary").status_code == 200
    assert client.get("/sdk/models/test/temporary").status_code == 404
    assert client.delete("/sdk/models/test/temporary").status_code == 404
    builtin = client.delete("/sdk/models/local/sentiment-vader")
    assert builtin.status_code == 403 and "built in" in builtin.json()["error"]


# -- runs -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("model_id", "text", "expected"),
    [
        ("local/sentiment-vader", "I love this wonderful notebook!", "POSITIVE"),
        ("local/sentiment-vader", "This is terrible, awful and broken.", "NEGATIVE"),
        ("local/langid-langdetect", "Bonjour tout le monde, comment allez-vous aujourd'hui ?", "fr"),
        ("local/langid-langdetect", "Das ist ein kleiner Satz in deutscher Sprache.", "de"),
    ],
)
def test_sync_run_real_models(client, model_id, text, expected):
    body = run_v2(client, f"{model_id}", {"data": text})
    assert body["status"] == "SUCCESS" and body["completed"] is True
    assert body["data"] == expected
    assert body["runTime"] >= 0 and body["asset"]["assetId"] == model_id


def test_sentiment_details_and_threshold_parameter(client):
    text = "The movie was okay."
    neutral = run_v2(client, "local/sentiment-vader", {"data": text, "threshold": 0.9})
    assert neutral["data"] == "NEUTRAL"
    assert {"compound", "pos", "neu", "neg"} <= set(neutral["details"])


def test_langid_is_deterministic_and_reports_candidates(client):
    text = "Ceci est une phrase, écrite en français pour le test."
    first = run_v2(client, "local/langid-langdetect", {"data": text, "candidates": 2})
    second = run_v2(client, "local/langid-langdetect", {"data": text, "candidates": 2})
    assert first["details"] == second["details"]
    assert first["details"]["languages"][0]["language"] == "fr"


def test_keywords_yake(client):
    text = (
        "Keyword extraction finds the most relevant words in a document. YAKE is an unsupervised "
        "keyword extraction method that uses statistical features of the text itself."
    )
    body = run_v2(client, "local/keywords-yake", {"data": text, "max_keywords": 3})
    assert body["status"] == "SUCCESS"
    assert len(body["data"]) == 3 and all(isinstance(k, str) for k in body["data"])
    assert any("extraction" in k.lower() for k in body["data"])
    assert [s["keyword"] for s in body["details"]["scores"]] == body["data"]


def test_async_run_then_poll_reports_progress_and_eta(client):
    url = run_v1(client, "local/countdown", {"data": "done!", "seconds": 2.0})
    seen = []
    while True:
        body = client.get(url).json()
        if body["completed"]:
            break
        assert body["status"] == "IN_PROGRESS"
        if "progress" in body:
            assert 0 <= body["progress"] <= 1 and body["eta"] >= 0 and body["total"] == 40
            seen.append(body["progress"])
        time.sleep(0.1)
    assert body["status"] == "SUCCESS" and body["data"] == "done!"
    assert len(seen) >= 3 and seen == sorted(seen) and seen[-1] > seen[0]


def test_slow_model_on_the_sync_path_answers_in_progress_with_a_poll_url(client):
    body = client.post("/api/v2/execute/local/countdown", json={"seconds": 1.5}).json()
    assert body["status"] == "IN_PROGRESS" and body["data"].startswith("http://127.0.0.1:")
    assert poll_until_done(client, body["data"])["data"] == "Liftoff!"


def test_held_poll_returns_when_the_job_ends(client):
    url = run_v1(client, "local/countdown", {"seconds": 0.6})
    reply = client.get(url, headers={"Prefer": "wait=20"})
    assert reply.json()["completed"] is True
    assert reply.headers["Preference-Applied"] == "wait=20"


def test_held_poll_returns_after_n_seconds_when_still_running(client):
    url = run_v1(client, "local/countdown", {"seconds": 30})
    started = time.monotonic()
    body = client.get(url, headers={"Prefer": "wait=0.4"}).json()
    assert time.monotonic() - started >= 0.35
    assert body["completed"] is False and body["state"] == "running"
    assert client.delete(url).json()["cancelled"] is True


def test_cancel_stops_the_job_and_later_polls_say_cancelled(client, server):
    url = run_v1(client, "local/countdown", {"seconds": 60})
    assert wait_for(lambda: client.get(url).json().get("state") == "running")
    reply = client.delete(url)
    assert reply.status_code == 200 and reply.json()["cancelled"] is True
    body = client.get(url).json()
    assert body["completed"] is True and body["status"] == "FAILED" and "cancelled" in body["error_message"]
    assert client.delete(url).json()["cancelled"] is False  # already over
    # the model's own work stopped: nothing is left running
    assert wait_for(lambda: not [t for t in threading.enumerate() if t.name == "aix-job-local/countdown"], 5)


def test_cancel_of_a_streaming_generator_closes_it(client):
    CLOSED.clear()
    url = run_v1(client, "test/forever", {"data": "x"})
    assert wait_for(lambda: client.get(url).json().get("state") == "running")
    assert client.delete(url).json()["cancelled"] is True
    assert CLOSED.wait(5)


def test_unknown_job_is_404(client, server):
    reply = client.get(f"{server.base_url}/api/v1/data/0123456789abcdef")
    assert reply.status_code == 404 and "not found" in reply.json()["error"]
    assert client.delete(f"{server.base_url}/api/v1/data/0123456789abcdef").status_code == 404


def test_a_model_that_raises_gives_failed_with_its_message(client):
    body = run_v2(client, "test/fail", {"data": "x"})
    assert body["status"] == "FAILED" and body["completed"] is True
    assert body["error_message"] == "ZeroDivisionError: the model divided by zero"
    assert "Traceback" not in json.dumps(body)
    url = run_v1(client, "local/countdown", {"seconds": 0.1, "fail": True})
    failed = poll_until_done(client, url)
    assert failed["status"] == "FAILED" and "fail=true" in failed["error_message"]


def test_cpu_bound_model_does_not_block_other_requests(client):
    url = run_v1(client, "test/busy", {"seconds": 3.0})
    assert wait_for(lambda: client.get(url).json().get("state") == "running")
    answered_while_busy = []
    for _ in range(3):
        body = run_v2(client, "local/sentiment-vader", {"data": "good"})
        assert body["data"] == "POSITIVE"
        answered_while_busy.append(client.get(url).json()["completed"] is False)
    assert answered_while_busy[0]  # answered while the CPU-bound run was still going
    assert poll_until_done(client, url)["status"] == "SUCCESS"


def test_per_model_concurrency_limit_queues_runs(client):
    first = run_v1(client, "test/sleepy", {"seconds": 0.6})
    second = run_v1(client, "test/sleepy", {"seconds": 0.6})
    assert wait_for(lambda: client.get(first).json().get("state") == "running")
    assert client.get(second).json()["state"] == "queued"
    assert poll_until_done(client, first)["data"] == "rested"
    assert poll_until_done(client, second)["data"] == "rested"


def test_progress_reported_through_the_injected_callable(client):
    url = run_v1(client, "test/sleepy", {"seconds": 3.0})
    samples = []
    while not (body := client.get(url).json())["completed"]:
        if "progress" in body:
            samples.append((body["progress"], body["done"], body["total"]))
        time.sleep(0.05)
    assert body["data"] == "rested"
    assert any(0 < p < 1 and total == 10 and done >= 1 for p, done, total in samples), samples


# -- streaming --------------------------------------------------------------------------------------------
def sse_events(response: httpx.Response) -> list[str]:
    return [line[len("data: ") :] for line in response.iter_lines() if line.startswith("data: ")]


def test_sse_stream_of_a_generator_model(client):
    with client.stream(
        "POST", "/api/v2/execute/test/tokens", json={"data": "w", "count": 4, "options": {"stream": True}}
    ) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        assert reply.headers["x-aix-poll-url"].startswith("http://127.0.0.1:")
        events = sse_events(reply)
    assert events[-1] == "[DONE]"
    assert [json.loads(e)["data"] for e in events[:-1]] == ["w0 ", "w1 ", "w2 ", "w3 "]


def test_sse_stream_of_a_non_streaming_model_sends_one_chunk(client):
    with client.stream(
        "POST", "/api/v2/execute/local/sentiment-vader", json={"data": "lovely", "options": {"stream": True}}
    ) as reply:
        events = sse_events(reply)
    assert events == ['{"data": "POSITIVE"}', "[DONE]"]


def test_sse_stream_failure_ends_with_a_failed_event(client):
    with client.stream(
        "POST", "/api/v2/execute/test/fail", json={"data": "x", "options": {"stream": True}}
    ) as r:
        events = sse_events(r)
    last = json.loads(events[-1])
    assert last["status"] == "FAILED" and "divided by zero" in last["error_message"]


def test_client_disconnect_stops_a_streaming_model(client):
    CLOSED.clear()
    with client.stream(
        "POST", "/api/v2/execute/test/forever", json={"data": "x", "options": {"stream": True}}
    ) as r:
        lines = r.iter_lines()
        got = [next(lines) for _ in range(3)]
    assert got[0].startswith("data: ")
    assert CLOSED.wait(5)


def test_a_streamed_model_run_without_stream_returns_the_whole_text(client):
    body = run_v2(client, "test/tokens", {"data": "a", "count": 3})
    assert body["data"] == "a0 a1 a2 "


# -- bad input --------------------------------------------------------------------------------------------
def test_malformed_and_non_object_json_are_400(client):
    for content in (b"{not json", b"[1, 2]", b"", b'"text"'):
        reply = client.post(
            "/api/v2/execute/local/sentiment-vader",
            content=content,
            headers={"Content-Type": "application/json"},
        )
        assert reply.status_code == 400, content
        assert reply.json()["statusCode"] == 400


def test_invalid_parameters_are_490_naming_the_parameter(client):
    cases = [
        ({"data": "x", "threshold": 5}, "threshold"),
        ({"data": "x", "threshold": "high"}, "threshold"),
        ({"data": "x", "colour": "red"}, "colour"),
        ({"threshold": 0.1}, "data"),
        ({"data": "x", "language": "xx"}, "language"),
    ]
    for body, name in cases:
        model = "local/keywords-yake" if "language" in body else "local/sentiment-vader"
        reply = client.post(f"/api/v2/execute/{model}", json=body)
        assert reply.status_code == 490, body
        assert reply.json()["parameter"] == name and f"'{name}'" in reply.json()["error"]


def test_null_values_are_ignored_like_unset_options(client):
    body = run_v2(client, "local/sentiment-vader", {"data": "great", "threshold": None, "history": None})
    assert body["data"] == "POSITIVE"


def test_unknown_endpoint_and_method_are_json(client):
    assert client.get("/nowhere").json()["statusCode"] == 404
    reply = client.put("/api/v1/execute/local/countdown", json={})
    assert reply.status_code == 405 and reply.json()["statusCode"] == 405


def test_oversized_body_is_413():
    server = start_server(max_body=1000)
    try:
        reply = httpx.post(
            f"{server.base_url}/api/v2/execute/local/sentiment-vader",
            json={"data": "x" * 5000},
            headers={"x-api-key": TOKEN},
        )
        assert reply.status_code == 413 and "too large" in reply.json()["error"]
        ok = httpx.post(
            f"{server.base_url}/api/v2/execute/local/sentiment-vader",
            json={"data": "fine"},
            headers={"x-api-key": TOKEN},
        )
        assert ok.status_code == 200
    finally:
        server.stop()


def test_too_many_queued_jobs_is_429_with_retry_after():
    server = start_server(max_pending=2)
    try:
        with httpx.Client(base_url=server.base_url, headers={"x-api-key": TOKEN}) as c:
            urls = [run_v1(c, "local/countdown", {"seconds": 30}) for _ in range(2)]
            reply = c.post("/api/v1/execute/local/countdown", json={"seconds": 30})
            assert reply.status_code == 429 and reply.headers["Retry-After"] == "1"
            assert "limit 2" in reply.json()["error"]
            c.delete(urls[0])
            assert c.post("/api/v2/execute/local/sentiment-vader", json={"data": "ok"}).status_code == 200
    finally:
        server.stop()


def test_finished_jobs_expire_after_the_ttl():
    server = start_server(ttl=0.2)
    try:
        with httpx.Client(base_url=server.base_url, headers={"x-api-key": TOKEN}) as c:
            url = run_v1(c, "local/sentiment-vader", {"data": "ok"})
            assert poll_until_done(c, url)["status"] == "SUCCESS"
            time.sleep(0.4)
            gone = c.get(url)
            assert gone.status_code == 410 and "finished more than 0.2 s ago" in gone.json()["error"]
    finally:
        server.stop()


# -- file upload ------------------------------------------------------------------------------------------
def test_upload_pair_then_run_on_the_uploaded_file(client, server):
    # the official SDK posts this form-encoded with "Authorization: token <key>"
    reply = httpx.post(
        f"{server.base_url}/sdk/file/upload/temp-url",
        data={"contentType": "text/plain", "originalName": "review.txt"},
        headers={"Authorization": f"token {TOKEN}"},
    )
    assert reply.status_code == 200, reply.text
    ticket = reply.json()
    assert ticket["key"].endswith("/review.txt")
    put = httpx.put(
        ticket["uploadUrl"],
        content=b"What a fantastic, delightful day!",
        headers={"Content-Type": "text/plain"},
    )  # no token: the URL is signed
    assert put.status_code == 200
    assert httpx.get(ticket["downloadUrl"]).text == "What a fantastic, delightful day!"
    for link in (ticket["downloadUrl"], f"s3://127/{ticket['key']}"):
        body = run_v2(client, "local/sentiment-vader", {"data": link})
        assert body["data"] == "POSITIVE", link
    forged = ticket["uploadUrl"].split("?")[0] + "?sig=" + "0" * 32
    assert httpx.put(forged, content=b"x").status_code == 403


# -- the embedded server ----------------------------------------------------------------------------------
def test_embedded_ensure_running_is_idempotent_and_thread_safe():
    embedded.stop()
    results: list[tuple[str, str]] = []
    threads = [threading.Thread(target=lambda: results.append(embedded.ensure_running())) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert len(set(results)) == 1
        url, token = results[0]
        assert url.startswith("http://127.0.0.1:") and len(token) >= 32
        assert httpx.get(f"{url}/sdk/models/local/countdown").status_code == 401
        meta = httpx.get(f"{url}/sdk/models/local/countdown", headers={"x-api-key": token})
        assert meta.json()["id"] == "local/countdown"
        assert embedded.ensure_running() == (url, token)
    finally:
        embedded.stop()
    assert not embedded.is_running()
    assert embedded.ensure_running() != (url, token)
    embedded.stop()


def test_typewriter_streams_the_text_back_deterministically(client):
    body = {"data": "The quick brown fox", "delay": 0.01, "options": {"stream": True}}
    with client.stream("POST", "/api/v2/execute/local/typewriter", json=body) as reply:
        events = sse_events(reply)
    assert [json.loads(e)["data"] for e in events[:-1]] == ["The", " quick", " brown", " fox"]
    assert events[-1] == "[DONE]"
    chars = run_v2(client, "local/typewriter", {"data": "abc", "unit": "character", "delay": 0})
    assert chars["data"] == "abc"


def test_an_unexpected_server_error_is_500_json_without_traceback(client, server):
    from aix_jupyter.backend.catalog import ModelSpec

    class BrokenSpec(ModelSpec):
        def to_wire(self) -> dict:
            raise RuntimeError("metadata exploded")

    good = server.state.catalog.get("test/fail")
    broken = BrokenSpec(
        id="test/broken",
        name="broken",
        function="utilities",
        runner=good.runner,
        params=good.params,
        builtin=False,
    )
    server.state.catalog.add(broken)
    try:
        reply = client.get("/sdk/models/test/broken")
        assert reply.status_code == 500
        assert reply.headers["content-type"] == "application/json"
        assert "RuntimeError" in reply.json()["error"] and "Traceback" not in reply.text
        assert client.get("/health").json()["status"] == "ok"  # still serving
    finally:
        server.state.catalog.remove("test/broken")
