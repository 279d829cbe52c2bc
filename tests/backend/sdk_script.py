"""Run by the official aixplain SDK (its own venv) against the backend; prints one JSON report.

Environment: MODELS_RUN_URL, BACKEND_URL, TEAM_API_KEY, AIXPLAIN_ALLOW_INSECURE_URLS=1 (set by the test).
Each check records "ok" and what it saw, or the error; nothing here imports aix_jupyter.
"""

from __future__ import annotations

import json
import os
import sys
import traceback

REPORT: dict[str, dict] = {}


def check(name):
    def wrap(fn):
        try:
            REPORT[name] = {"ok": True, "seen": fn()}
        except Exception as exc:
            REPORT[name] = {
                "ok": False,
                "error": f"{type(exc).__name__}: {exc}",
                "trace": traceback.format_exc()[-800:],
            }
        return fn

    return wrap


def main() -> None:
    import logging

    from aixplain.enums import Function, ResponseStatus
    from aixplain.factories import ModelFactory

    logging.getLogger().setLevel(logging.WARNING)
    with_llm = os.environ.get("AIX_SDK_WITH_LLM") == "1"

    @check("ModelFactory.get")
    def _():
        model = ModelFactory.get("local/sentiment-vader")
        assert model.id == "local/sentiment-vader", model.id
        assert model.function == Function.SENTIMENT_ANALYSIS, model.function
        assert "threshold" in model.model_params.parameters, model.model_params
        return repr(model)

    @check("run")
    def _():
        r = ModelFactory.get("local/sentiment-vader").run("I love this, it is wonderful!")
        assert r.status == ResponseStatus.SUCCESS and r.data == "POSITIVE", r
        assert r["completed"] is True and r.run_time >= 0 and "compound" in r.details
        return {"status": str(r.status), "data": r.data}

    @check("run with parameters")
    def _():
        r = ModelFactory.get("local/sentiment-vader").run(
            "The movie was okay.", parameters={"threshold": 0.9}
        )
        assert r.data == "NEUTRAL", r
        return r.data

    @check("run_async + sync_poll")
    def _():
        model = ModelFactory.get("local/countdown")
        started = model.run_async({"data": "we have liftoff", "seconds": 1})
        assert started.status == ResponseStatus.IN_PROGRESS and started.url, started
        done = model.sync_poll(started.url, wait_time=0.2, timeout=60)
        assert done.status == ResponseStatus.SUCCESS and done.data == "we have liftoff", done
        return {"class": type(model).__name__, "url": started.url.split("/api/")[1][:12], "data": done.data}

    @check("poll progress")
    def _():
        model = ModelFactory.get("local/countdown")
        started = model.run_async({"data": "x", "seconds": 1})
        import time

        time.sleep(0.5)
        one = model.poll(started.url)
        assert one.status == ResponseStatus.IN_PROGRESS and 0 < one["progress"] < 1, one
        model.sync_poll(started.url, wait_time=0.2, timeout=60)
        return {"progress": one["progress"], "eta": one["eta"]}

    @check("run on a slow model (v2 IN_PROGRESS, then polled)")
    def _():
        r = ModelFactory.get("local/countdown").run("slow", parameters={"seconds": 1.5}, wait_time=0.2)
        assert r.status == ResponseStatus.SUCCESS and r.data == "slow", r
        return r.data

    @check("run of a failing model")
    def _():
        r = ModelFactory.get("test/fail").run("x")
        assert r.status == ResponseStatus.FAILED and "divided by zero" in r.error_message, r
        return r.error_message

    @check("invalid parameter")
    def _():
        r = ModelFactory.get("local/sentiment-vader").run("x", parameters={"threshold": 5})
        assert r.status == ResponseStatus.FAILED and "threshold" in r.error_message, r
        return r.error_message

    @check("run with a local file (upload pair)")
    def _():
        with open("review.txt", "w") as f:
            f.write("What a fantastic, delightful day!")
        r = ModelFactory.get("local/sentiment-vader").run(os.path.abspath("review.txt"))
        assert r.data == "POSITIVE", r
        return r.data

    @check("ModelFactory.list")
    def _():
        found = ModelFactory.list(query="yake")
        ids = [m.id for m in found["results"]]
        assert ids == ["local/keywords-yake"], found
        by_function = ModelFactory.list(function=Function.LANGUAGE_IDENTIFICATION)
        assert [m.id for m in by_function["results"]] == ["local/langid-langdetect"], by_function
        return {"query": ids, "total": found.get("total")}

    @check("check_finetune_status")
    def _():
        status = ModelFactory.get("local/sentiment-vader").check_finetune_status()
        assert status is None, status  # not a fine-tune: the SDK logs the backend's 404 and returns None
        return repr(status)

    @check("delete")
    def _():
        model = ModelFactory.get("test/temporary-sdk")
        model.delete()
        try:
            ModelFactory.get("test/temporary-sdk")
        except Exception as exc:
            return f"gone: {str(exc)[:60]}"
        raise AssertionError("the model is still there")

    if with_llm:

        @check("LLM run")
        def _():
            llm = ModelFactory.get("local/smollm2-135m")
            r = llm.run("What is the capital of France? Answer in one word.", max_tokens=16, temperature=0)
            assert r.status == ResponseStatus.SUCCESS and r.data.strip(), r
            assert r.usage["completion_tokens"] > 0
            return {"class": type(llm).__name__, "data": r.data}

        @check("run_stream")
        def _():
            llm = ModelFactory.get("local/smollm2-135m")
            chunks = list(llm.run("Name three colours.", max_tokens=16, temperature=0, stream=True))
            texts = [c.data for c in chunks if c.data]
            assert len(texts) >= 3, chunks
            assert chunks[-1].status == ResponseStatus.SUCCESS, chunks[-1]
            return {"chunks": len(texts), "text": "".join(texts)}

        @check("LLM run with context, history and a response_format schema")
        def _():
            import json

            llm = ModelFactory.get("local/smollm2-135m")
            schema = {"type": "object", "properties": {"answer": {"type": "string", "enum": ["yes", "no"]}}}
            history = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
            r = llm.run(
                "Is the sky blue?",
                context="Answer in JSON.",
                history=history,
                response_format=schema,
                max_tokens=24,
                temperature=0,
            )
            assert r.status == ResponseStatus.SUCCESS, r
            answer = json.loads(r.data)  # constrained decoding: JSON of the schema
            assert set(answer) == {"answer"} and answer["answer"] in ("yes", "no"), answer
            return answer

        @check("LLM run_async + sync_poll")
        def _():
            llm = ModelFactory.get("local/smollm2-135m")
            started = llm.run_async("Say hello.", max_tokens=8, temperature=0)
            done = llm.sync_poll(started.url, wait_time=0.2, timeout=120)
            assert done.status == ResponseStatus.SUCCESS and done.data, done
            return done.data

    if os.environ.get("AIX_SDK_WITH_MEDIA") == "1":

        @check("speech synthesis, then recognition of its URL")
        def _():
            spoken = ModelFactory.get("local/piper-joe").run("The quick brown fox jumps over the lazy dog.")
            assert spoken.status == ResponseStatus.SUCCESS and "/files/" in spoken.data, spoken
            heard = ModelFactory.get("local/whisper-tiny-en").run(spoken.data)
            assert heard.status == ResponseStatus.SUCCESS, heard
            assert heard.data.lower().rstrip(".") == "the quick brown fox jumps over the lazy dog", heard
            assert heard.details["segments"][0]["end"] > 1, heard.details
            return {"url": spoken.data.split("?")[0], "heard": heard.data}

        @check("OCR of a local image (upload pair)")
        def _():
            model = ModelFactory.get("local/ocr-rapidocr")
            assert model.function == Function.OCR, model.function
            r = model.run(os.environ["AIX_SDK_TEST_PNG"])
            assert r.status == ResponseStatus.SUCCESS, r
            assert r.data == "The quick brown fox jumps over the lazy dog.", r
            return r.data

        @check("text embedding")
        def _():
            model = ModelFactory.get("local/e5-small")
            assert model.function == Function.TEXT_EMBEDDING, model.function
            r = model.run("where is the kitty sleeping?", parameters={"mode": "query"})
            assert r.status == ResponseStatus.SUCCESS and len(r.data) == 384, r
            return {"dimensions": len(r.data)}

    if os.environ.get("AIX_SDK_WITH_MT") == "1":

        @check("translation")
        def _():
            model = ModelFactory.get("local/apertium-en-es")
            assert model.function == Function.TRANSLATION, model.function
            r = model.run("The dog sleeps.", parameters={"sourcelanguage": "en", "targetlanguage": "es"})
            assert r.status == ResponseStatus.SUCCESS and "perro" in r.data, r
            return r.data

    @check("wrong API key")
    def _():
        from aixplain.modules.model import Model

        model = Model("local/sentiment-vader", api_key="wrong-key")
        r = model.run("hi")
        assert r.status == ResponseStatus.FAILED and "Unauthorized" in r.error_message, r
        return r.error_message[:60]


if __name__ == "__main__":
    main()
    json.dump(REPORT, sys.stdout)
