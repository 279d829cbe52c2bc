"""Jobs: every model run is a job with a state, run off the event loop in its own worker thread.

* States: queued -> running -> succeeded | failed | cancelled. Every state change happens on the
  server's event loop; the worker thread only computes and hands its outcome back.
* A per-model semaphore bounds how many runs of one model execute at once, a global one bounds all
  of them; a cap on unfinished jobs makes new submissions fail with :class:`ServerBusy` (HTTP 429).
* Finished jobs are forgotten after a TTL, and the oldest first beyond a count and a byte budget
  (their results' approximate size), so memory stays bounded; a job drops its inputs when it ends.
  A forgotten job's id is remembered (a bounded set) so that its poll can say why it is gone.
* Model code reports progress and notices cancellation through a :class:`JobContext` (passed to the
  runner, and reachable from anywhere in the worker thread with :func:`current_job`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import secrets
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextvars import ContextVar
from enum import Enum, StrEnum
from typing import Any

from aix_jupyter.backend.catalog import ModelSpec

CANCELLED_MESSAGE = "Run cancelled by the client."

#: default byte budget of the finished jobs kept for polling (their results, details and chunks)
DEFAULT_KEPT_BYTES = 256 * 2**20
#: how many forgotten job ids are remembered to explain a late poll (32-character ids: ~1 MB at most)
FORGOTTEN_IDS = 10_000


#: ``save(data, name, content_type) -> url``: stores a run's output file where clients can fetch it
FileSink = Callable[[bytes, str, str], str]


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})


class JobCancelled(Exception):
    """Raised inside a model's code (by ``progress()``/``check()``/``sleep()``) once its run was cancelled."""


class ServerBusy(Exception):
    """Too many unfinished jobs: the submission is refused (HTTP 429 with Retry-After)."""


class JobContext:
    """What a running model sees of its job: progress reporting, cancellation, usage and details."""

    __slots__ = ("_job",)

    def __init__(self, job: Job) -> None:
        self._job = job

    @property
    def job_id(self) -> str:
        return self._job.id

    @property
    def cancelled(self) -> bool:
        return self._job.cancel_event.is_set()

    def check(self) -> None:
        """Raise :class:`JobCancelled` when the run was cancelled (call it between units of work)."""
        if self._job.cancel_event.is_set():
            raise JobCancelled(CANCELLED_MESSAGE)

    def progress(self, done: float, total: float | None = None, *, eta: float | None = None) -> None:
        """Report progress: ``progress(0.4)`` (a fraction) or ``progress(4, 10)`` (done of total).

        ``eta`` (seconds left) is optional; without it the server estimates it from the elapsed time.
        Raises :class:`JobCancelled` when the run was cancelled, so a loop that reports progress stops.
        """
        self.check()
        job = self._job
        if total is None:
            fraction = float(done)
            job.done = job.total = None
        else:
            fraction = float(done) / float(total) if total else 0.0
            job.done, job.total = done, total
        job.fraction = min(max(fraction, 0.0), 1.0) if math.isfinite(fraction) else None
        job.eta = None if eta is None else max(float(eta), 0.0)
        job.eta_at = time.monotonic()

    def sleep(self, seconds: float) -> None:
        """Sleep, waking up at once (with :class:`JobCancelled`) if the run is cancelled."""
        if self._job.cancel_event.wait(max(seconds, 0.0)):
            raise JobCancelled(CANCELLED_MESSAGE)
        self.check()

    def set_usage(self, prompt_tokens: int, completion_tokens: int) -> None:
        self._job.usage = {
            "prompt_tokens": int(prompt_tokens),
            "completion_tokens": int(completion_tokens),
            "total_tokens": int(prompt_tokens) + int(completion_tokens),
        }

    def save_file(self, data: bytes, name: str, content_type: str) -> str:
        """Store an output file (e.g. synthesised speech); return the URL that serves it."""
        if self._job.files is None:
            raise RuntimeError("this run has no file store (output files need a run through the server)")
        return self._job.files(data, name, content_type)

    @property
    def details(self) -> dict[str, Any]:
        """A dict the model may fill; it is sent as the reply's ``details``."""
        return self._job.details


_CURRENT: ContextVar[JobContext | None] = ContextVar("aix_current_job", default=None)


def current_job() -> JobContext | None:
    """The job being run by the calling thread, or None outside a model run."""
    return _CURRENT.get()


def report_progress(done: float, total: float | None = None, *, eta: float | None = None) -> None:
    """Report the current run's progress (a no-op outside a run); see :meth:`JobContext.progress`."""
    ctx = _CURRENT.get()
    if ctx is not None:
        ctx.progress(done, total, eta=eta)


def jsonable(value: Any) -> Any:
    """``value`` made JSON-safe: numpy scalars and arrays, tuples, sets, dataclasses, NaN."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, Enum):
        return jsonable(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    for method in ("model_dump", "tolist", "item"):  # pydantic models, numpy arrays and scalars
        fn = getattr(value, method, None)
        if callable(fn):
            try:
                return jsonable(fn())
            except (TypeError, ValueError):
                break
    return str(value)


def approx_size(value: Any) -> int:
    """About how many bytes ``value`` (a JSON-like result) holds: string lengths plus a little per item.

    Iterative (a deep value cannot overflow the stack) and linear in the value's size.
    """
    size, stack = 0, [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str | bytes | bytearray):
            size += len(item) + 40
        elif isinstance(item, dict):
            size += 64
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            size += 56 + 8 * len(item)
            stack.extend(item)
        else:
            size += 32
    return size


def error_message(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Job:
    """One run of one model."""

    def __init__(
        self, spec: ModelSpec, inputs: dict[str, Any], *, stream: bool = False, files: FileSink | None = None
    ) -> None:
        self.id = secrets.token_hex(16)
        self.files = files
        self.spec = spec
        self.inputs = inputs
        self.stream = stream
        self.state = JobState.QUEUED
        self.created = time.monotonic()
        self.started: float | None = None
        self.ended: float | None = None
        self.result: Any = None
        self.error: str | None = None
        self.usage: dict[str, int] | None = None
        self.details: dict[str, Any] = {}
        self.fraction: float | None = None
        self.done: float | None = None
        self.total: float | None = None
        self.eta: float | None = None
        self.eta_at: float | None = None
        self.cancel_event = threading.Event()
        self.finished = asyncio.Event()  # set when the outcome is known to clients
        self.chunks: list[str] = []
        self.weight = 0  # approximate bytes kept once finished (see JobStore.max_kept_bytes)
        self._listeners: set[asyncio.Queue[str | None]] = set()
        self._thread_done = asyncio.Event()  # set when the worker thread has returned

    # -- state ------------------------------------------------------------------------------------
    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def run_time(self) -> float:
        start = self.started if self.started is not None else self.created
        end = self.ended if self.ended is not None else time.monotonic()
        return max(end - start, 0.0)

    def eta_now(self) -> float | None:
        now = time.monotonic()
        if self.eta is not None and self.eta_at is not None:
            return max(self.eta - (now - self.eta_at), 0.0)
        if self.fraction and self.started is not None:
            return (now - self.started) * (1.0 - self.fraction) / self.fraction
        return None

    def reply(self) -> dict[str, Any]:
        """The poll reply for the job's current state (PROTOCOL.md)."""
        body: dict[str, Any] = {"requestId": self.id}
        if self.state is JobState.SUCCEEDED:
            body.update(
                completed=True,
                status="SUCCESS",
                data=self.result,
                usedCredits=0,
                runTime=round(self.run_time, 4),
                asset={"assetId": self.spec.id, "function": self.spec.function},
            )
            if self.details:
                body["details"] = jsonable(self.details)
            if self.usage:
                body["usage"] = self.usage
        elif self.terminal:
            body.update(completed=True, status="FAILED", error_message=self.error or "Run failed.")
            body["runTime"] = round(self.run_time, 4)
            if self.state is JobState.CANCELLED:
                body["cancelled"] = True
        else:
            body.update(completed=False, status="IN_PROGRESS", state=self.state.value)
            body["elapsed"] = round(time.monotonic() - self.created, 3)
            if self.fraction is not None:
                body["progress"] = round(self.fraction, 4)
            if self.done is not None and self.total is not None:
                body["done"], body["total"] = jsonable(self.done), jsonable(self.total)
            eta = self.eta_now()
            if eta is not None:
                body["eta"] = round(eta, 2)
        return body

    # -- loop-side helpers (always called on the event loop) ---------------------------------------
    def _publish(self, chunk: str) -> None:
        if self.terminal:
            return
        self.chunks.append(chunk)
        for queue in self._listeners:
            queue.put_nowait(chunk)

    def _finish(self) -> None:
        self.finished.set()
        for queue in self._listeners:
            queue.put_nowait(None)

    async def chunks_stream(self) -> AsyncIterator[str]:
        """The job's text chunks: those already produced, then live ones until the job ends."""
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        for earlier in self.chunks:
            queue.put_nowait(earlier)
        if self.terminal:
            queue.put_nowait(None)
        else:
            self._listeners.add(queue)
        try:
            while (chunk := await queue.get()) is not None:
                yield chunk
        finally:
            self._listeners.discard(queue)


class JobStore:
    """Creates, runs, tracks, cancels and expires jobs. Lives on one event loop."""

    def __init__(
        self,
        *,
        max_pending: int = 64,
        max_running: int = 8,
        ttl: float = 600.0,
        max_kept: int = 1000,
        max_kept_bytes: int = DEFAULT_KEPT_BYTES,
    ) -> None:
        self.max_pending = max_pending
        self.max_running = max_running
        self.ttl = ttl
        self.max_kept = max_kept
        self.max_kept_bytes = max_kept_bytes
        self.kept_bytes = 0  # the weight of the finished jobs kept
        self._jobs: dict[str, Job] = {}
        self._ended: deque[Job] = deque()  # finished jobs, in the order they ended
        self._forgotten: dict[str, str] = {}  # id -> why it was forgotten, oldest first
        self._active: set[str] = set()
        self._model_sems: dict[str, tuple[ModelSpec, asyncio.Semaphore]] = {}
        self._global_sem: asyncio.Semaphore | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- public API (call on the loop) ------------------------------------------------------------
    def submit(
        self, spec: ModelSpec, inputs: dict[str, Any], *, stream: bool = False, files: FileSink | None = None
    ) -> Job:
        """Queue a run of ``spec``; raise :class:`ServerBusy` when too many jobs are unfinished.

        ``files`` stores the run's output files (see :meth:`JobContext.save_file`).
        """
        self._loop = asyncio.get_running_loop()
        self.purge()
        if len(self._active) >= self.max_pending:
            raise ServerBusy(
                f"{len(self._active)} runs are queued or running (limit {self.max_pending}); retry later"
            )
        job = Job(spec, inputs, stream=stream, files=files)
        self._jobs[job.id] = job
        self._active.add(job.id)
        task = asyncio.get_running_loop().create_task(self._dispatch(job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    def get(self, job_id: str) -> Job | None:
        self.purge()
        return self._jobs.get(job_id)

    def forgotten(self, job_id: str) -> str | None:
        """Why the finished job ``job_id`` is no longer kept, or None if it is unknown."""
        return self._forgotten.get(job_id)

    def cancel(self, job: Job) -> bool:
        """Cancel ``job``; False when it had already ended."""
        if job.terminal:
            return False
        job.cancel_event.set()
        self._settle(job, JobState.CANCELLED, error=CANCELLED_MESSAGE)
        return True

    async def wait(self, job: Job, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for ``job`` to end; True when it has."""
        if job.terminal or timeout <= 0:
            return job.terminal
        try:
            await asyncio.wait_for(job.finished.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def cancel_all(self) -> None:
        """Signal every unfinished job to stop (thread-safe; used at shutdown)."""
        for job in list(self._jobs.values()):
            job.cancel_event.set()

    @property
    def pending(self) -> int:
        return len(self._active)

    def purge(self) -> None:
        """Forget finished jobs older than the TTL, and the oldest beyond ``max_kept`` or ``max_kept_bytes``.

        Jobs are dropped from the front of ``_ended`` (oldest first), so the cost is the number of
        jobs forgotten, not the number kept: it runs on every submit and poll. The newest finished
        job is never dropped for its size alone (its client has not had a chance to read it).
        """
        now = time.monotonic()
        while self._ended:
            oldest = self._ended[0]
            if now - (oldest.ended or now) > self.ttl:
                why = f"it finished more than {self.ttl:g} s ago (the server keeps results that long)"
            elif len(self._jobs) > self.max_kept:
                why = f"the server keeps the results of the last {self.max_kept} runs only"
            elif self.kept_bytes > self.max_kept_bytes and len(self._ended) > 1:
                why = (
                    f"newer results filled the server's {self.max_kept_bytes / 2**20:g} MiB "
                    "budget for finished runs"
                )
            else:
                break
            self._ended.popleft()
            self._jobs.pop(oldest.id, None)
            self.kept_bytes -= oldest.weight
            self._forgotten[oldest.id] = why
            if len(self._forgotten) > FORGOTTEN_IDS:
                self._forgotten.pop(next(iter(self._forgotten)))

    # -- running ------------------------------------------------------------------------------------
    def _model_sem(self, spec: ModelSpec) -> asyncio.Semaphore:
        entry = self._model_sems.get(spec.id)
        if entry is None or entry[0] is not spec:
            entry = (spec, asyncio.Semaphore(max(spec.concurrency, 1)))
            self._model_sems[spec.id] = entry
        return entry[1]

    async def _dispatch(self, job: Job) -> None:
        if self._global_sem is None:
            self._global_sem = asyncio.Semaphore(self.max_running)
        async with self._model_sem(job.spec), self._global_sem:
            if job.terminal:  # cancelled while queued
                return
            job.state = JobState.RUNNING
            job.started = time.monotonic()
            loop = asyncio.get_running_loop()
            thread = threading.Thread(
                target=self._execute, args=(job, loop), name=f"aix-job-{job.spec.id}", daemon=True
            )
            thread.start()
            await job._thread_done.wait()

    def _execute(self, job: Job, loop: asyncio.AbstractEventLoop) -> None:
        """Worker thread: run the model, then hand the outcome to the loop."""
        ctx = JobContext(job)
        token = _CURRENT.set(ctx)

        def on_loop(fn: Callable[..., None], *args: Any) -> None:
            with contextlib.suppress(RuntimeError):  # a closed loop: the server is gone
                loop.call_soon_threadsafe(fn, *args)

        state, result, error = JobState.FAILED, None, None
        try:
            out = job.spec.runner(job.inputs, ctx)
            if isinstance(out, Iterator):
                parts: list[str] = []
                try:
                    for chunk in out:
                        if job.cancel_event.is_set():
                            break
                        text = chunk if isinstance(chunk, str) else str(jsonable(chunk))
                        if text:
                            parts.append(text)
                            on_loop(job._publish, text)
                finally:
                    close = getattr(out, "close", None)
                    if callable(close):
                        close()
                ctx.check()
                out = "".join(parts)
            ctx.check()
            state, result = JobState.SUCCEEDED, jsonable(out)
        except JobCancelled:
            state, error = JobState.CANCELLED, CANCELLED_MESSAGE
        except BaseException as exc:
            state, error = JobState.FAILED, error_message(exc)
        finally:
            _CURRENT.reset(token)
            on_loop(self._complete, job, state, result, error)

    def _complete(self, job: Job, state: JobState, result: Any, error: str | None) -> None:
        if not job.terminal:
            self._settle(job, state, result=result, error=error)
        job._thread_done.set()

    def _settle(self, job: Job, state: JobState, *, result: Any = None, error: str | None = None) -> None:
        job.state = state
        job.result = result
        job.error = error
        job.ended = time.monotonic()
        job.inputs = {}  # the worker already holds them; a finished job keeps only its reply
        job.weight = approx_size(result) + approx_size(job.details) + approx_size(job.chunks)
        self.kept_bytes += job.weight
        self._ended.append(job)
        if state is JobState.SUCCEEDED:
            job.fraction = 1.0
        self._active.discard(job.id)
        job._finish()
