"""The loopback wire server of ``wireserver``, extended for batch tests and benchmarks.

On top of ``WireServer`` (which see), for ``POST /api/v2/execute/{id}``:

* ``latency``: seconds a run takes (a number, or a function of the input); with ``polled=True``
  a run answers IN_PROGRESS at once and is a job of that length, polled on ``/api/v1/data``;
  ``answer_delay``: with ``polled=True``, the job starts when the POST arrives but its answer (the
  poll URL) goes out this many seconds later -- a run POST still in flight holds a started job;
* a counter of *open* jobs: a run is open from its POST until its final answer is about to be
  sent (the immediate reply, or the poll that reports the end) or its DELETE arrives --
  ``max_open`` is the most open at once, as the server saw it (``max_open_by_model``: per model);
* ``cap``: a POST arriving while ``cap`` jobs are open is refused with HTTP 429 + ``Retry-After:
  retry_after`` (no job is started); ``storm``: the next ``storm`` POSTs are refused the same way;
* ``fail_if(data)``: runs whose input matches end FAILED;
* ``runs``: how many jobs each input started (a job refused with 429 did not start), ``refused``:
  the number of 429 answers, ``started``: the ids of the polled jobs started, ``deleted``: the job ids
  cancelled by DELETE.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from tests.core.wireserver import Job, Recorded, WireServer, _Handler


class _BatchHandler(_Handler):
    wire: BatchServer

    def _default(self, method: str, path: str, rec: Recorded) -> None:
        wire = self.wire
        if method == "POST" and path.startswith("/api/v2/execute/"):
            payload = rec.json() or {}
            data = payload.get("data")
            model_id = path.rsplit("/", 1)[1]
            if not wire.admit(data, model_id):
                self._send(429, {"error": "too many runs"}, {"Retry-After": f"{wire.retry_after:g}"})
                return
            seconds = wire.latency(data) if callable(wire.latency) else wire.latency
            if wire.polled:
                job = wire.start_job(model_id, data, seconds)
                with wire._lock:
                    wire.started.append(job.id)
                if wire.answer_delay:
                    wire._stopping.wait(wire.answer_delay)
                self._send(200, {"status": "IN_PROGRESS", "data": wire.poll_url(job.id), "completed": False})
                return
            if seconds:
                wire._stopping.wait(seconds)
            body = wire.result_body(data, seconds)
            wire.close_one(model_id)
            self._send(200, body)
            return
        if method == "DELETE" and path.startswith("/api/v1/data/"):
            job = wire.jobs.get(path.rsplit("/", 1)[1])
            if job is not None:
                with wire._lock:
                    wire.deleted.append(job.id)
                wire.release(job)
        super()._default(method, path, rec)


class BatchServer(WireServer):
    handler = _BatchHandler

    def __init__(
        self,
        *,
        latency: float | Callable[[Any], float] = 0.0,
        polled: bool = False,
        answer_delay: float = 0.0,
        cap: int | None = None,
        retry_after: float = 0.2,
        fail_if: Callable[[Any], bool] | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        self.latency = latency
        self.polled = polled
        self.answer_delay = answer_delay
        self.cap = cap
        self.retry_after = retry_after
        self.storm = 0
        self.fail_if = fail_if
        self.open = 0
        self.max_open = 0
        self.open_by_model: Counter[str] = Counter()
        self.max_open_by_model: Counter[str] = Counter()
        self.refused = 0
        self.runs: Counter[str] = Counter()
        self.started: list[str] = []
        self.deleted: list[str] = []
        self._released: set[str] = set()
        self.first_post = threading.Event()

    def admit(self, data: Any, model_id: str = "") -> bool:
        with self._lock:
            if self.storm > 0 or (self.cap is not None and self.open >= self.cap):
                self.storm = max(0, self.storm - 1)
                self.refused += 1
                return False
            self.open += 1
            self.max_open = max(self.max_open, self.open)
            self.open_by_model[model_id] += 1
            self.max_open_by_model[model_id] = max(
                self.max_open_by_model[model_id], self.open_by_model[model_id]
            )
            self.runs[str(data)] += 1
        self.first_post.set()
        return True

    def close_one(self, model_id: str = "") -> None:
        with self._lock:
            self.open -= 1
            self.open_by_model[model_id] -= 1

    def release(self, job: Job) -> None:
        with self._lock:
            if job.id in self._released:
                return
            self._released.add(job.id)
            self.open -= 1
            self.open_by_model[job.model_id] -= 1

    def result_body(self, data: Any, run_time: float) -> dict[str, Any]:
        if self.fail_if is not None and self.fail_if(data):
            return {"status": "FAILED", "completed": True, "error": f"cannot process {data}"}
        return {
            "status": "SUCCESS",
            "completed": True,
            "data": f"echo: {data}",
            "usedCredits": 0.01,
            "runTime": run_time,
        }

    def job_reply(self, job: Job) -> dict[str, Any]:
        body = super().job_reply(job)
        if body.get("completed"):
            self.release(job)  # before the answer goes out: the client may start the next run at once
            if not job.cancelled:
                return self.result_body(job.data, job.seconds)
        return body
