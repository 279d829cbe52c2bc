"""The official aixplain SDK (0.2.48, unmodified, in its own venv) against the backend.

The venv is built once and cached outside the repository (``AIX_SDK_VENV`` or
``~/.cache/aix_jupyter/sdk-venv-<version>``); the SDK runs in a subprocess against a real backend on
loopback, exactly as a user would point it at ``aix serve``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aix_jupyter.backend.models import smollm2, unavailable
from aix_jupyter.backend.registry import register_model
from tests.sdk_venv import run_script, sdk_python

from .conftest import TOKEN

pytestmark = [pytest.mark.sdk, pytest.mark.slow]

SCRIPT = Path(__file__).with_name("sdk_script.py")


@pytest.fixture(scope="module")
def sdk_report(server, tmp_path_factory) -> dict:
    python = sdk_python()

    @register_model(id="test/temporary-sdk", catalog=server.state.catalog)
    def temporary(text: str) -> str:
        return text

    last_line = run_script(
        python,
        SCRIPT,
        base_url=server.base_url,
        token=TOKEN,
        workdir=tmp_path_factory.mktemp("sdk"),
        timeout=600,
        AIX_SDK_WITH_LLM="1" if smollm2.available() else "0",
        AIX_SDK_WITH_MEDIA="0" if set(unavailable()) & set(MEDIA_MODELS) else "1",
        AIX_SDK_WITH_MT="0" if "local/apertium-en-es" in unavailable() else "1",
        AIX_SDK_TEST_PNG=str(Path(__file__).parent.parent / "data" / "text_line.png"),
    )
    report = json.loads(last_line)
    summary = {name: ("ok" if r["ok"] else r["error"]) for name, r in report.items()}
    print("SDK conformance:", json.dumps(summary, indent=1))
    return report


CHECKS = [
    "ModelFactory.get",
    "run",
    "run with parameters",
    "run_async + sync_poll",
    "poll progress",
    "run on a slow model (v2 IN_PROGRESS, then polled)",
    "run of a failing model",
    "invalid parameter",
    "run with a local file (upload pair)",
    "ModelFactory.list",
    "check_finetune_status",
    "delete",
    "wrong API key",
]
LLM_CHECKS = [
    "LLM run",
    "run_stream",
    "LLM run with context, history and a response_format schema",
    "LLM run_async + sync_poll",
]
MEDIA_MODELS = ["local/whisper-tiny-en", "local/piper-joe", "local/ocr-rapidocr", "local/e5-small"]
MEDIA_CHECKS = [
    "speech synthesis, then recognition of its URL",
    "OCR of a local image (upload pair)",
    "text embedding",
    "translation",
]


@pytest.mark.parametrize("name", CHECKS)
def test_official_sdk(sdk_report, name):
    result = sdk_report[name]
    assert result["ok"], f"{result['error']}\n{result.get('trace', '')}"


@pytest.mark.llm
@pytest.mark.parametrize("name", LLM_CHECKS)
def test_official_sdk_llm(sdk_report, name):
    assert smollm2.available(), "the SmolLM2 model is not installed"
    result = sdk_report[name]
    assert result["ok"], f"{result['error']}\n{result.get('trace', '')}"


@pytest.mark.parametrize("name", MEDIA_CHECKS)
def test_official_sdk_media_models(sdk_report, name):
    needed = ["local/apertium-en-es"] if name == "translation" else MEDIA_MODELS
    missing = [model for model in needed if model in unavailable()]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")
    result = sdk_report[name]
    assert result["ok"], f"{result['error']}\n{result.get('trace', '')}"
