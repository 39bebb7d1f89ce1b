"""`core.countdown`: a small real job that counts down with progress.

It proves the job system end to end (portal progress bar, worker kill/takeover tests) without
depending on any domain app.
"""

from __future__ import annotations

import time
from typing import Any

from core.jobs.runner import JobContext, job_function


@job_function("core.countdown")
def countdown(ctx: JobContext) -> dict[str, Any]:
    steps = int(ctx.params.get("steps", 10))
    step_seconds = float(ctx.params.get("step_seconds", 0.5))
    if ctx.params.get("fail"):
        raise RuntimeError("Countdown asked to fail.")
    for step in range(1, steps + 1):
        time.sleep(step_seconds)
        ctx.report(progress=step / steps, message=f"Step {step} of {steps}")
    return {"steps": steps, "attempt": ctx.job.attempts}
