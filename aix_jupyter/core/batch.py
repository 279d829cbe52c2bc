"""Batch runs: ``Model.map`` / ``Model.amap`` over many inputs, and ``BatchResult``.

A batch is not a loop of ``run`` calls. It is one scheduler over the run flows the model builds
(``flows.run_flow``), driven by ``flows.drive_async``: each item holds one *slot* from before its
request is sent until its job has ended (polls and the cancel included), so at most
``concurrency`` jobs are ever in flight on the server. The sync ``map`` runs the same scheduler
on a private event loop in a helper thread, so it works where the calling thread already runs a
loop (a notebook cell), in plain Python and from any thread; its events are handed to
``on_event`` in the calling thread.

Back-pressure: an HTTP 429/503 answer to a run request (no job was started) gives the item's slot
back and queues it again after the server's ``Retry-After``, and halves the effective concurrency;
successes raise it again (``batch_schedule``: ``Limiter``, ``guard_run_request``). Nothing that
may have started a job is ever sent twice.

Stopping. ``timeout`` bounds the whole batch; ``cancel`` (a ``threading.Event``), Ctrl-C and task
cancellation stop it early. Then no item is started any more, the jobs in flight are cancelled on
the server (``DELETE``, bounded by the flows' cancel budget) and control returns within about a
second. A run POST still in flight then is left to answer in its worker (``Call.cancel_orphan``, as
for a single run, up to ``RUN_GRACE`` s after the batch deadline), and the job it started is
cancelled. Every item of a sized input that did not finish is a FAILED response saying why; for a
generator, the items consumed so far are kept and the rest is never read.

Events (``BatchEvent``) carry the counts a progress display needs -- done / total, failed, in
flight, effective concurrency, credits, elapsed (and ``rate`` / ``eta`` from them) -- so a front
end is a thin consumer:

    started     the batch began (``total`` when the input has a length)
    run         a per-run ``RunEvent`` of item ``index`` (``run``: submitted, polled, finished, ...)
    item_finished / item_failed   item ``index`` ended (``response``; ``message`` "reused" for an
                item taken from ``resume``)
    concurrency the effective concurrency changed (``concurrency``; ``message`` says why)
    finished    the batch ended (``message``: "", "cancelled", "timeout" or "interrupted")
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Sized
from typing import TYPE_CHECKING, Any, Protocol, cast

from aix_jupyter.core.async_transport import AsyncTransport, async_client
from aix_jupyter.core.batch_result import (
    BatchEvent,
    BatchEventKind,
    BatchResult,
    Rerunnable,
    StopReason,
    _failed,
)
from aix_jupyter.core.batch_result import BatchInterrupted as BatchInterrupted
from aix_jupyter.core.batch_schedule import MAX_PUSHBACKS as MAX_PUSHBACKS
from aix_jupyter.core.batch_schedule import MIN_PAUSE, Limiter, PushedBack, SharedLimit, guard_run_request
from aix_jupyter.core.enums import ResponseStatus
from aix_jupyter.core.errors import AixError, ParameterError
from aix_jupyter.core.events import (
    EventHook,
    OutcomeKind,
    RunEvent,
    RunOutcome,
    report_outcome,
    report_response,
)
from aix_jupyter.core.flows import CANCELLED_MESSAGE, drive_async
from aix_jupyter.core.marks import spent_credits
from aix_jupyter.core.polling import DEFAULT_MAX_WAIT
from aix_jupyter.core.protocol import WIRE_KEYS
from aix_jupyter.core.recall import replaying
from aix_jupyter.core.response import ModelResponse

if TYPE_CHECKING:
    from aix_jupyter.core.config import Endpoints
    from aix_jupyter.core.flows import Flow
    from aix_jupyter.core.parameters import ModelParameters

BatchHook = Callable[["BatchEvent"], None]

TICK = 0.05  # seconds: how often the scheduler looks at ``cancel`` and the deadline while waiting
STOP_BUDGET = 0.9  # seconds an interrupted batch waits for its in-flight jobs' cancellation
# An item's own run timeout outlasts the batch deadline by this much, so the batch cancels it; a run
# POST still in flight when the batch stops has this long to answer, so the job it started is cancelled.
RUN_GRACE = 30.0
SIGNAL_WAIT = 0.1  # seconds: the sync caller waits in slices so that Ctrl-C is noticed at once

_STOP_MESSAGES: dict[str, str] = {
    "cancelled": "Not run: the batch was cancelled first.",
    "interrupted": "Not run: the batch was interrupted first.",
}


class BatchModel(Rerunnable, Protocol):
    """What a batch uses of its model (``core.model.Model`` is one): its id and parameter schema, where
    its requests go, and the flow of one run."""

    model_params: ModelParameters

    def endpoints(self, *, start_default: bool = True) -> Endpoints: ...

    def _run_flow(
        self,
        data: Any,
        parameters: Mapping[str, Any] | None,
        timeout: float,
        wait_time: float,
        max_wait: float,
        on_event: EventHook | None,
        start: float | None = None,
        *,
        session: OutcomeKind | None = None,
        cache: Any = None,
    ) -> tuple[Flow, Endpoints]: ...


# ---------------------------------------------------------------------------------------------
# inputs


def _is_pandas(value: Any, kind: str) -> bool:
    cls = type(value)
    return cls.__name__ == kind and cls.__module__.split(".", 1)[0] == "pandas"


def batch_inputs(inputs: Any, where: str = "map") -> tuple[Iterable[Any], list[Any] | None, int | None]:
    """``(items, index, total)``: the items to iterate lazily, a pandas index, and the length if known.

    A single text, dict or DataFrame would iterate as characters, keys or column names -- a
    silent wrong result -- so they are refused with a one-line error saying what to pass.
    """
    if isinstance(inputs, str | bytes):
        raise ParameterError(
            f"{where}: inputs is a single text; pass a list of inputs ([text, ...]) or use run()",
            parameter="inputs",
        )
    if isinstance(inputs, Mapping):
        raise ParameterError(
            f"{where}: inputs is a single dict; pass a list of inputs ([{{...}}, ...]) or use run()",
            parameter="inputs",
        )
    if _is_pandas(inputs, "DataFrame"):
        raise ParameterError(
            f"{where}: inputs is a DataFrame; pass one column (df['text']) or df.to_dict('records')",
            parameter="inputs",
        )
    if _is_pandas(inputs, "Series"):
        return inputs.tolist(), list(inputs.index), len(inputs)  # Python scalars, not numpy ones
    if not isinstance(inputs, Iterable):
        raise ParameterError(
            f"{where}: inputs must be an iterable of inputs (a list, a generator, a pandas Series), "
            f"got {type(inputs).__name__}",
            parameter="inputs",
        )
    total = len(inputs) if isinstance(inputs, Sized) else None
    return inputs, None, total


def check_batch_parameters(model: BatchModel, parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate ``parameters`` once, before anything is sent (names and values; data comes per item)."""
    if parameters is None:
        return {}
    if not isinstance(parameters, Mapping):
        raise ParameterError(
            f"parameters must be a dict of name -> value, got {type(parameters).__name__}",
            parameter="parameters",
        )
    schema = model.model_params
    if len(schema):
        for name, value in parameters.items():
            if name not in WIRE_KEYS:
                schema[name].check(value)  # unknown names and bad values raise, naming the parameter
    return dict(parameters)


def _check_numbers(concurrency: Any, timeout: Any) -> None:
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ParameterError(
            f"concurrency must be a whole number >= 1, got {concurrency!r}", parameter="concurrency"
        )
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise ParameterError(f"timeout must be a number of seconds > 0, got {timeout!r}", parameter="timeout")


# ---------------------------------------------------------------------------------------------
# the scheduler


class Batch:
    """The state of one batch run: one instance per ``map``/``amap`` call, driven by ``run()``."""

    def __init__(
        self,
        model: BatchModel,
        inputs: Any,
        parameters: Mapping[str, Any] | None = None,
        *,
        concurrency: int = 8,
        timeout: float = 300,
        on_event: BatchHook | None = None,
        cancel: threading.Event | None = None,
        resume: BatchResult | None = None,
        cache: Any = None,
        wait_time: float = 0.5,
        max_wait: float | None = None,
        shared: SharedLimit | None = None,
    ) -> None:
        _check_numbers(concurrency, timeout)
        if resume is not None and not isinstance(resume, BatchResult):
            raise ParameterError(
                f"resume must be a BatchResult, got {type(resume).__name__}", parameter="resume"
            )
        if resume is not None and resume.model_id and resume.model_id != model.id:
            raise ParameterError(
                f"resume: that BatchResult is from model {resume.model_id!r}, not {model.id!r}",
                parameter="resume",
            )
        self.model = model
        self.parameters = check_batch_parameters(model, parameters)
        items, self.index, self.total = batch_inputs(inputs)
        self._source: Iterator[tuple[int, Any]] = enumerate(items)
        self.concurrency = concurrency
        self.timeout = float(timeout)
        self.on_event = on_event
        self.cancel = cancel
        self.resume = resume
        self.cache = cache  # Model.run's ``cache``: with the cache on, only the missing items go out
        self.wait_time = wait_time
        self.max_wait = DEFAULT_MAX_WAIT if max_wait is None else max_wait
        self.limiter = Limiter(concurrency)
        self.shared = shared  # a bound on the jobs in flight shared with other batches (compare)
        if shared is not None:
            shared.join(self)
        self.stop = threading.Event()  # given to every run flow as its cancel event
        self.stopped: StopReason | None = None
        self.inputs: list[Any] = []
        self.responses: list[ModelResponse | None] = []
        self.done = self.failures = self.reused = 0
        self.credits = 0.0
        self.start = time.monotonic()
        self.deadline = self.start + self.timeout
        self.finished_at: float | None = None
        self._exhausted = False
        self._requeued: deque[tuple[float, int, int, int]] = deque()  # (ready at, index, pushes, connects)

    # -- events ---------------------------------------------------------------------------------
    def emit(self, kind: BatchEventKind, index: int | None = None, **kw: Any) -> None:
        if self.on_event is None:
            return
        self.on_event(
            BatchEvent(
                kind,
                self.model.id,
                index,
                self.done,
                self.failures,
                self.total,
                self.limiter.in_flight,
                self.limiter.effective,
                self.credits,
                time.monotonic() - self.start,
                **kw,
            )
        )

    def _run_hook(self, index: int) -> Callable[[RunEvent], None] | None:
        if self.on_event is None:
            return None
        return lambda event: self.emit("run", index, run=event)

    # -- bookkeeping ----------------------------------------------------------------------------
    def _next_input(self) -> tuple[int, Any] | None:
        """The next input to run (reused ones are recorded on the way), or None when there is none."""
        while not self._exhausted:
            try:
                i, data = next(self._source)
            except StopIteration:
                self._exhausted = True
                return None
            self.inputs.append(data)
            self.responses.append(None)
            previous = self._reusable(i, data)
            if previous is None:
                return i, data
            self.responses[i] = previous
            self.done += 1
            self.reused += 1
            self.credits += float(previous.used_credits or 0)
            self.emit("item_finished", i, response=previous, message="reused")
        return None

    def _reusable(self, i: int, data: Any) -> ModelResponse | None:
        old = self.resume
        if old is None or i >= len(old) or old[i].status is not ResponseStatus.SUCCESS:
            return None
        with contextlib.suppress(Exception):  # inputs that cannot be compared are simply run again
            if old.inputs[i] == data:
                return old[i]
        return None

    def _record(self, i: int, response: ModelResponse) -> None:
        self.responses[i] = response
        report_response("item", self.model.id, response)  # counted as an item of this batch only
        self.done += 1
        self.credits += spent_credits(response)
        if response.status is ResponseStatus.SUCCESS:
            self.emit("item_finished", i, response=response)
        else:
            self.failures += 1
            self.emit("item_failed", i, response=response, message=response.error_message)

    def _halt(self, reason: StopReason) -> None:
        if self.stopped is None:
            self.stopped = reason
        self.stop.set()

    def _check_stop(self, now: float) -> None:
        if self.stopped is not None:
            return
        if self.cancel is not None and self.cancel.is_set():
            self._halt("cancelled")
        elif now >= self.deadline:
            self._halt("timeout")

    def _not_run_message(self) -> str:
        if self.stopped == "timeout":
            return f"Not run: the batch timeout of {self.timeout:g} s ran out first."
        return _STOP_MESSAGES.get(self.stopped or "", "Not run.")

    def _stopped_message(self, response: ModelResponse) -> ModelResponse:
        """An in-flight item cut by the batch deadline says so (it was cancelled on the server)."""
        if self.stopped == "timeout" and CANCELLED_MESSAGE in response.error_message:
            response.error_message = (
                f"No result within the batch timeout of {self.timeout:g} s; the run was cancelled."
            )
        return response

    def result(self) -> BatchResult:
        """The BatchResult as it stands (unfinished items of a sized input FAILED, saying why)."""
        if self.stopped is not None and self.total is not None:
            for _, data in itertools.islice(self._source, self.total - len(self.inputs)):
                self.inputs.append(data)
                self.responses.append(None)
        message = self._not_run_message()
        responses = [r if r is not None else _failed(message) for r in self.responses]
        end = self.finished_at if self.finished_at is not None else time.monotonic()
        return BatchResult(
            responses,
            self.inputs,
            model=self.model,
            parameters=self.parameters,
            index=self.index,
            wall_time=end - self.start,
            concurrency=self.concurrency,
            timeout=self.timeout,
            stopped=self.stopped,
            reused=self.reused,
        )

    # -- one item -------------------------------------------------------------------------------
    async def _item(self, transport: Any, i: int, pushes: int, connects: int) -> ModelResponse | PushedBack:
        left = max(0.05, self.deadline - time.monotonic()) + RUN_GRACE
        try:
            flow, _ = self.model._run_flow(  # the flow a Model builds for one run (validates the input)
                self.inputs[i],
                self.parameters,
                left,
                self.wait_time,
                self.max_wait,
                self._run_hook(i),
                time.monotonic(),
                cache=self.cache,
            )
        except AixError as exc:  # this input cannot be run: it fails, the batch goes on
            return _failed(str(exc))
        try:
            return await drive_async(guard_run_request(flow, pushes, connects), transport, self.stop)
        except AixError as exc:  # e.g. an upload refused: the item fails with the message
            return _failed(str(exc))

    def _ended(self, i: int, pushes: int, connects: int, outcome: ModelResponse | PushedBack) -> None:
        now = time.monotonic()
        limiter = self.limiter
        if isinstance(outcome, PushedBack):
            if outcome.connect:
                connects += 1
                limiter.paused_until = max(limiter.paused_until, now + outcome.delay)
                changed = False
            else:
                pushes += 1
                changed = limiter.pushed_back(outcome.sent_at, now, outcome.delay)
            self._requeued.append((now + max(outcome.delay, MIN_PAUSE), i, pushes, connects))
            if changed:
                self.emit("concurrency", message="the server pushed back")
            return
        self._record(i, self._stopped_message(outcome))
        if outcome.status is ResponseStatus.SUCCESS and limiter.succeeded():
            self.emit("concurrency", message="raised while the server keeps up")

    def _take(self, now: float) -> tuple[int, int, int] | None:
        """The next item to start now: a requeued one whose wait is over, else a new input."""
        if self._requeued and self._requeued[0][0] <= now:
            _, i, pushes, connects = self._requeued.popleft()
            return i, pushes, connects
        if self._requeued and self._exhausted:
            return None
        nxt = self._next_input()
        return None if nxt is None else (nxt[0], 0, 0)

    def _wake_in(self, now: float) -> float:
        times = [now + TICK, self.deadline]
        if self._requeued:
            times.append(min(r[0] for r in self._requeued))
        if self.limiter.paused_until > now:
            times.append(self.limiter.paused_until)
        return max(0.0, min(times) - now)

    # -- the loop -------------------------------------------------------------------------------
    def _may_start(self, now: float) -> bool:
        if self.stopped is not None or not self.limiter.can_start(now):
            return False
        return self.shared is None or self.shared.may_start(self)

    def _starting(self) -> bool:
        """Are there items left to start (False once stopped or every input was started)?"""
        return self.stopped is None and not (self._exhausted and not self._requeued)

    async def run(self) -> BatchResult:
        ep = self.model.endpoints(start_default=not replaying())  # replayed: nothing is sent
        report_outcome(RunOutcome("batch", self.model.id, "STARTED"))
        self.emit("started")
        tasks: dict[asyncio.Task[Any], tuple[int, int, int]] = {}
        shared = self.shared
        async with async_client(ep.run_url) as client:
            transport = AsyncTransport(ep, client)
            try:
                while True:
                    now = time.monotonic()
                    self._check_stop(now)
                    while self._may_start(now):
                        item = self._take(now)
                        if item is None:
                            break
                        self.limiter.in_flight += 1
                        if shared is not None:
                            shared.take(self)
                        task = asyncio.ensure_future(self._item(transport, *item))
                        tasks[task] = item
                    starting = self._starting()
                    if shared is not None and not starting:
                        shared.leave(self)
                    if not tasks and not starting:
                        break
                    waits: set[asyncio.Future[Any]] = set(tasks)
                    if shared is not None and starting and self.limiter.can_start(now):
                        waits.add(shared.changed())  # held back by the shared limit (or pausing)
                    if not waits:
                        await asyncio.sleep(self._wake_in(now))
                        continue
                    done, _ = await asyncio.wait(
                        waits, timeout=self._wake_in(now), return_when=asyncio.FIRST_COMPLETED
                    )
                    for finished in done:
                        if finished not in tasks:
                            continue  # the shared limit changed
                        task = cast("asyncio.Task[Any]", finished)
                        i, pushes, connects = tasks.pop(task)
                        self.limiter.in_flight -= 1
                        if shared is not None:
                            shared.give(self)
                        self._ended(i, pushes, connects, task.result())
            except BaseException:  # Ctrl-C, task cancellation, a failing event hook
                self._halt("interrupted")
                await _settle(tasks)
                raise
            finally:
                if shared is not None:
                    shared.give(self, len(tasks))
                    shared.leave(self)
        self.finished_at = time.monotonic()
        result = self.result()
        self.emit("finished", message=self.stopped or "")
        return result

    def interrupt(self) -> None:
        """Stop from another thread (Ctrl-C in the caller of a sync ``map``)."""
        self._halt("interrupted")


async def _settle(tasks: Mapping[asyncio.Task[Any], Any]) -> None:
    """Let the in-flight items cancel their jobs (the stop event is set), within ``STOP_BUDGET``."""
    if not tasks:
        return
    pending = set(tasks)
    with contextlib.suppress(BaseException):
        _, pending = await asyncio.wait(pending, timeout=STOP_BUDGET)
    for task in pending:
        task.cancel()
    with contextlib.suppress(BaseException):
        await asyncio.wait(pending, timeout=0.1)


# ---------------------------------------------------------------------------------------------
# drivers: the async one is the scheduler itself; the sync one runs it on a private loop


_END = object()


def run_batches(batches: Sequence[Batch]) -> list[BatchResult]:
    """Run ``batches`` together on a private event loop in a helper thread; events in this thread.

    Works whether or not this thread runs an event loop. Ctrl-C (or an event hook that raises)
    stops every batch: the jobs in flight are cancelled and ``BatchInterrupted`` carries the
    partial result of every batch (``.batches``; ``.results`` is the first's).
    """
    inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
    for batch in batches:
        if batch.on_event is not None:
            batch.on_event = (lambda hook: lambda event: inbox.put((hook, event)))(batch.on_event)
    outcome: dict[str, Any] = {}
    ended = threading.Event()

    def main() -> None:
        async def together() -> list[BatchResult]:
            return list(await asyncio.gather(*(b.run() for b in batches)))

        try:
            outcome["results"] = asyncio.run(together())
        except BaseException as exc:
            outcome["error"] = exc
        finally:
            ended.set()
            inbox.put(_END)

    worker = threading.Thread(target=main, name="aix-batch", daemon=True)
    worker.start()
    try:
        while True:
            try:
                item = inbox.get(timeout=SIGNAL_WAIT)
            except queue.Empty:
                item = None  # no `continue` here: CPython 3.11 lets a Ctrl-C raised there escape
            if item is _END:
                break
            if item is not None:
                hook, event = item
                hook(event)
    except BaseException as exc:
        for batch in batches:
            batch.interrupt()
        ended.wait(STOP_BUDGET + 0.1)
        results = outcome.get("results") or [b.result() for b in batches]
        if isinstance(exc, KeyboardInterrupt):
            raise BatchInterrupted(results[0], results) from None
        raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome["results"]
