"""Machine translation with Apertium (rule-based; Debian's ``apertium`` and ``apertium-eng-spa``), offline.

No wheel ships a translation model, so this one comes from the system's packages: each run is a
``apertium -u <pair>`` subprocess (``-u``: unknown words without Apertium's ``*`` mark), with a
timeout, killed when the run is cancelled. The language pairs are those installed (their mode files);
``make system`` installs English-Spanish. Quality is rough (rules, no neural model).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

from aix_jupyter.backend.catalog import ModelSpec, param
from aix_jupyter.backend.jobs import JobContext
from aix_jupyter.backend.models.engine import ModelUnavailable, described
from aix_jupyter.core.parameters import ModelParameters

MODEL_ID = "local/apertium-en-es"
INSTALL_HINT = "sudo apt-get install apertium apertium-eng-spa"
MODES_DIR = Path("/usr/share/apertium/modes")
#: the platform's language codes (ISO 639-1) and Apertium's (ISO 639-3)
CODES = {"en": "eng", "es": "spa"}
TIMEOUT = 60.0
MAX_CHARACTERS = 100_000
_POLL = 0.05  # seconds between two looks at a cancel while the subprocess runs


def executable() -> str | None:
    return shutil.which("apertium")


def pairs() -> list[tuple[str, str]]:
    """The installed (source, target) pairs among :data:`CODES`, e.g. ``[("en", "es"), ("es", "en")]``."""
    if executable() is None:
        return []
    found = []
    for source, src in CODES.items():
        for target, tgt in CODES.items():
            if source != target and (MODES_DIR / f"{src}-{tgt}.mode").is_file():
                found.append((source, target))
    return found


def available() -> bool:
    return bool(pairs())


def translate(text: str, source: str, target: str, ctx: JobContext | None = None) -> str:
    """``text`` translated by ``apertium -u {source}-{target}`` (ISO 639-1 codes); killed on cancel."""
    program = executable()
    if program is None or (source, target) not in pairs():
        what = "Apertium" if program is None else f"Apertium's {source}-{target} pair"
        raise ModelUnavailable(f"{what} is not installed: {INSTALL_HINT}")
    mode = f"{CODES[source]}-{CODES[target]}"
    process = subprocess.Popen(
        [program, "-u", mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "LC_ALL": "C.UTF-8"},
        start_new_session=True,  # its pipeline of programs is one process group, killed together
    )
    data: bytes | None = text.encode("utf-8")
    waited = 0.0
    try:
        while True:
            try:
                out, err = process.communicate(data, timeout=_POLL)
                break
            except subprocess.TimeoutExpired:
                data = None  # (sent on the first call; later calls carry on with it)
                waited += _POLL
                if ctx is not None:
                    ctx.check()  # JobCancelled when the run was cancelled
                if waited >= TIMEOUT:
                    raise TimeoutError(
                        f"Apertium took more than {TIMEOUT:g} s; the text may be too long"
                    ) from None
    finally:
        if process.poll() is None:
            _kill(process)
    if process.returncode != 0:
        message = err.decode("utf-8", errors="replace").strip().splitlines()
        raise RuntimeError(f"apertium {mode} failed: {message[-1] if message else process.returncode}")
    return out.decode("utf-8", errors="replace")


def _kill(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.communicate()


def run_apertium(inputs: dict[str, Any], ctx: JobContext) -> str:
    text = str(inputs["text"])
    if len(text) > MAX_CHARACTERS:
        raise ValueError(f"parameter 'text' has {len(text)} characters; at most {MAX_CHARACTERS} per run")
    source, target = str(inputs["sourcelanguage"]), str(inputs["targetlanguage"])
    if source == target:
        raise ValueError(f"sourcelanguage and targetlanguage are both '{source}'; pick two languages")
    translated = translate(text, source, target, ctx)
    ctx.details.update(engine="apertium", pair=f"{CODES[source]}-{CODES[target]}")
    # Apertium keeps the input's line breaks; the platform answers the text without a trailing one
    return translated[:-1] if translated.endswith("\n") and not text.endswith("\n") else translated


def apertium_spec() -> ModelSpec:
    installed = pairs()
    description = (
        "English <-> Spanish translation, offline and rule-based: Apertium (Debian's apertium and "
        "apertium-eng-spa, GPL), run as a subprocess. Rough quality."
    )
    languages = sorted({code for pair in installed for code in pair}) or sorted(CODES)
    return ModelSpec(
        id=MODEL_ID,
        name="Apertium English-Spanish",
        function="translation",
        listed=bool(installed),  # listed where the engine is; elsewhere a run says how to install it
        runner=run_apertium,
        description=described(description, bool(installed), INSTALL_HINT),
        params=ModelParameters(
            [
                param("text", "text", required=True, description="The text to translate."),
                param(
                    "sourcelanguage",
                    "label",
                    default="en",
                    options=languages,
                    description="The text's language.",
                ),
                param(
                    "targetlanguage",
                    "label",
                    default="es",
                    options=languages,
                    description="The language to translate into.",
                ),
            ]
        ),
        concurrency=2,
    )
