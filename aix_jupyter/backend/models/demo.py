"""A deterministic slow model: counts down, reporting progress, stoppable at any moment.

Useful to see a progress bar, an ETA and cancellation work end to end without a heavy model.
"""

from __future__ import annotations

import time
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
