"""Deterministic demo models, to see progress bars, ETAs, streaming and cancellation end to end
without a heavy model (and with outputs a notebook test can compare):

* ``local/countdown`` waits ``seconds``, reporting progress, stoppable at any moment;
* ``local/typewriter`` streams its input back word by word (or character by character).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

from aix_jupyter.backend.catalog import ModelSpec, param
from aix_jupyter.backend.jobs import JobContext
from aix_jupyter.core.parameters import ModelParameters

TICK = 0.05  # seconds between progress reports


def run_countdown(inputs: dict[str, Any], ctx: JobContext) -> str:
    seconds = float(inputs["seconds"])
    start = time.monotonic()
    steps = max(round(seconds / TICK), 1)
    for step in range(steps):
        ctx.progress(step, steps, eta=max(seconds - (time.monotonic() - start), 0.0))
        ctx.sleep(start + (step + 1) * seconds / steps - time.monotonic())
    ctx.progress(steps, steps, eta=0.0)
    if inputs["fail"]:
        raise RuntimeError(f"countdown of {seconds:g} s failed on request (fail=true)")
    message = inputs.get("data") or "Liftoff!"
    return f"{message}"


def countdown_spec() -> ModelSpec:
    return ModelSpec(
        id="local/countdown",
        name="Countdown",
        function="utilities",
        function_type="utility",
        runner=run_countdown,
        description="Waits `seconds`, reporting progress and an ETA, then answers `data` (default "
        "'Liftoff!'). "
        "A deterministic long-running job for progress bars and cancel buttons.",
        params=ModelParameters(
            [
                param("data", "text", default="Liftoff!", description="The text answered at the end."),
                param(
                    "seconds",
                    "number",
                    default=3.0,
                    minimum=0.0,
                    maximum=3600.0,
                    step=0.5,
                    description="How long the run takes.",
                ),
                param(
                    "fail", "boolean", default=False, description="Fail at the end instead (to see errors)."
                ),
            ]
        ),
        concurrency=8,
        sync_wait=0.5,
        code="builtin:aix_jupyter.backend.models.demo.run_countdown",
    )


def run_typewriter(inputs: dict[str, Any], ctx: JobContext) -> Iterator[str]:
    text = str(inputs["data"])
    pieces = re.findall(r"\s*\S+", text) if inputs["unit"] == "word" else list(text)
    delay = float(inputs["delay"])
    for done, piece in enumerate(pieces):
        ctx.progress(done, len(pieces), eta=delay * (len(pieces) - done))
        ctx.sleep(delay)
        yield piece
    ctx.progress(len(pieces), len(pieces), eta=0.0)


def typewriter_spec() -> ModelSpec:
    return ModelSpec(
        id="local/typewriter",
        name="Typewriter",
        function="utilities",
        function_type="utility",
        runner=run_typewriter,
        streaming=True,
        description="Streams the text back, one word (or character) at a time, `delay` seconds apart. "
        "A deterministic streaming model for demos and tests.",
        params=ModelParameters(
            [
                param("data", "text", required=True, description="The text to type out."),
                param(
                    "unit",
                    "label",
                    default="word",
                    options=("word", "character"),
                    description="What each chunk holds.",
                ),
                param(
                    "delay",
                    "number",
                    default=0.05,
                    minimum=0.0,
                    maximum=5.0,
                    step=0.01,
                    description="Seconds between chunks.",
                ),
            ]
        ),
        concurrency=8,
        sync_wait=0.5,
        code="builtin:aix_jupyter.backend.models.demo.run_typewriter",
    )
