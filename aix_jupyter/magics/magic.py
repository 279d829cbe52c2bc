"""The ``%aix`` / ``%%aix`` magics: a thin front end over the client core.

Parsing lives in :mod:`aix_jupyter.magics.args`, input handling in :mod:`aix_jupyter.magics.inputs`,
completion in :mod:`aix_jupyter.magics.complete`, rendering in :mod:`aix_jupyter.display`; this
module wires them to the core (``ModelFactory``, ``Model.run``/``run_stream``/``run_async``/
``poll``/``sync_poll``/``cancel_run``, ``config``). Everything it knows about a model comes from the
core and the model's parameter schema.

Loading the extension imports nothing heavy: the core (httpx, pydantic) and ipywidgets are
imported by the first command that needs them.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from collections import ChainMap
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from IPython.core.completer import context_matcher
from IPython.core.magic import Magics, line_cell_magic, magics_class, needs_local_scope, no_var_expand
from traitlets import Enum, Float, Int, Unicode, observe

from aix_jupyter.core.errors import ConfigurationError, RunCancelled
from aix_jupyter.magics import args as ma
from aix_jupyter.magics.errors import MagicUsageError, RunFailed
from aix_jupyter.magics.ledger import COLUMNS, STORE_COLUMNS, Ledger


class _LazyModule:
    """A module imported on its first use, so that ``%load_ext`` stays light."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name), attr)


if TYPE_CHECKING:
    from aix_jupyter import display as aix_display
    from aix_jupyter.core.model import Model
    from aix_jupyter.magics import inputs as mi
    from aix_jupyter.magics.complete import CompletionSource
else:
    aix_display = _LazyModule("aix_jupyter.display")
    mi = _LazyModule("aix_jupyter.magics.inputs")


@magics_class
class AixMagics(Magics):
    """``%aix`` / ``%%aix``: run aiXplain-wire models. ``%aix help`` lists the subcommands."""

    default_model = Unicode(
        "", help="Model id used when a run/info/widget command names none (e.g. 'local/sentiment-vader')."
    ).tag(config=True)
    timeout = Float(300.0, help="Seconds a run may take before it is cancelled and fails.").tag(config=True)
    poll_interval = Float(0.5, help="First wait between polls in seconds (it grows 10% per poll).").tag(
        config=True
    )
    poll_cap = Float(
        5.0, help="Longest wait between two polls in seconds (a finished job is noticed within this)."
    ).tag(config=True)
    progress = Enum(
        ["auto", "widget", "text", "off"],
        "auto",
        help="Progress while waiting: a widget bar, a text line, 'auto' (the bar in a live frontend, "
        "see $AIX_FRONTEND), or 'off'.",
    ).tag(config=True)
    models_page_size = Int(100, help="How many models %aix models lists.").tag(config=True)
    embed_max_bytes = Int(
        None,
        allow_none=True,
        help="Largest media output (audio, image, video) embedded in the notebook, in bytes; a larger one "
        "is shown by its link. None: $AIX_EMBED_MAX_BYTES, else 10 MiB; 0: never embed.",
    ).tag(config=True)

    @observe("embed_max_bytes")
    def _embed_max_changed(self, change: Any) -> None:
        aix_display.set_embed_max_bytes(change["new"])

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self._jobs: dict[str, str] = {}  # poll URL -> model id
        self._local_ns: dict[str, Any] | None = None
        self._completion: CompletionSource | None = None
        self.conversations: dict[tuple[str, str], Any] = {}  # (model id, session) -> %aix chat's Conversation
        self.ledger = Ledger()  # what this kernel ran (``%aix usage``; observed once the extension loads)

    # -- entry point ---------------------------------------------------------------------------
    @no_var_expand
    @needs_local_scope
    @line_cell_magic
    def aix(self, line: str, cell: str | None = None, local_ns: dict[str, Any] | None = None) -> Any:
        """Run aiXplain-wire models: ``%aix help`` lists the subcommands and their options."""
        self._local_ns = local_ns  # ``{name}`` also sees a function's local variables
        try:
            return self._dispatch(line, cell)
        finally:
            self._local_ns = None

    def _dispatch(self, line: str, cell: str | None) -> Any:
        args = ma.parse_command(line, default_model=self.default_model, known_models=self._known_ids())
        takes_cell = isinstance(args, ma.RunArgs) or (
            isinstance(args, ma.BatchArgs) and args.command == "compare"
        )
        if cell is not None and not takes_cell:
            raise MagicUsageError(
                "%%aix takes a run, stream, chat, async or compare command; the cell body is the input"
            )
        if isinstance(args, ma.RunArgs) and args.command in ma.CHAT_COMMANDS:
            from aix_jupyter.magics import chat

            return chat.handle(self, args, cell)
        if isinstance(args, ma.RunArgs):
            return self._run(args, cell)
        if isinstance(args, ma.BatchArgs):
            return self._map(args) if args.command == "map" else self._compare(args, cell)
        if isinstance(args, ma.PollArgs):
            return self._poll(args)
        if isinstance(args, ma.TargetArgs):
            return self._cancel(args)
        if isinstance(args, ma.BrowseArgs):
            return self._browse(args)
        if isinstance(args, ma.ModelsArgs):
            return self._models(args)
        if isinstance(args, ma.ModelArgs):
            model_id = mi.interpolate(args.model_id, self._ns)
            return self._info(model_id) if args.command == "info" else self._widget(model_id)
        if not isinstance(args, ma.SimpleArgs):  # cache, record, replay
            from aix_jupyter.magics import stores

            return stores.handle(args, self._path)
        if args.command == "config":
            return self._config()
        if args.command == "login":
            return self._login()
        if args.command == "usage":
            return self._usage()
        print(ma.help_text(args.topic))
        return None

    aix.__doc__ = ma.usage()

    @property
    def _user_ns(self) -> dict[str, Any]:
        """Where ``-o VAR`` stores results: the notebook's namespace."""
        return self.shell.user_ns if self.shell is not None else {}

    @property
    def _ns(self) -> ChainMap[str, Any]:
        """Where ``{name}`` and handle variables are looked up: local variables, then the notebook's."""
        return ChainMap(self._local_ns or {}, self._user_ns)

    # -- run / stream / async ------------------------------------------------------------------
    def _get_model(self, model_id: str) -> Model:
        from aix_jupyter.core.factory import ModelFactory

        model = ModelFactory.get(model_id)
        self.completion.remember_model(model)
        return model

    def _run(self, args: ma.RunArgs, cell: str | None) -> Any:
        model_id = mi.interpolate(args.model_id, self._ns)
        model = self._get_model(model_id)
        schema = model.model_params
        opts = ma.parse_run_options(
            args.rest,
            schema,
            command=args.command,
            model_id=model_id,
            interpolate_value=lambda s: mi.interpolate(s, self._ns),
        )
        if opts.help:
            return self._info(model_id, model=model)
        _take_cell(opts, cell)
        run_input = mi.resolve_input(opts.input_text, self._ns)
        data = self._prepare_data(run_input, schema)
        schema.validate_request(opts.parameters, data_given=data is not None)
        provenance = run_provenance(model, opts)
        response_format = self.response_format(opts, model)
        stream = (opts.stream or args.command == "stream") and response_format is None
        if stream and not getattr(model, "supports_streaming", False):
            raise MagicUsageError(f"{model.id} does not stream; use %aix run (see %aix models)")
        if args.command == "async":
            response = self._submit(model, data, opts, provenance)
        elif stream:
            response = self._stream(model, data, opts, provenance)
        else:
            extra = {} if response_format is None else {"response_format": response_format}
            response = self._wait(model, data, opts, provenance, **extra)
        return self.deliver(response, opts, model.id)

    def response_format(self, opts: ma.RunOptions, model: Any) -> Any:
        """``--schema VAR``: the pydantic class or JSON-schema dict ``VAR`` holds (None without it)."""
        if opts.schema is None:
            return None
        if opts.schema not in self._ns:
            raise MagicUsageError(f"--schema: no variable {opts.schema!r} in the notebook")
        value = self._ns[opts.schema]
        if not (isinstance(value, dict) or (isinstance(value, type) and hasattr(value, "model_json_schema"))):
            raise MagicUsageError(
                f"--schema {opts.schema} holds a {type(value).__name__}; give a pydantic class or a "
                "JSON-schema dict"
            )
        if not _takes_response_format(model):
            raise MagicUsageError(f"--schema: {model.id} is not a text-generation model (an LLM)")
        return value

    def deliver(self, response: Any, opts: ma.RunOptions, model_id: str) -> Any:
        """A finished answer: kept in ``-o VAR``, checked for ``-f json``, its code put in a new cell
        below for ``-f code``; the value of the magic (the parsed object with ``--schema``)."""
        if opts.out:
            self._user_ns[opts.out] = response
        text = response.data if isinstance(response.data, str) else None
        if opts.output_format == "json" and text is not None and opts.schema is None:
            try:
                aix_display.parse_json_answer(text)
            except ValueError as exc:
                kept = f"; the response is in {opts.out}" if opts.out else ""
                raise RunFailed(f"{model_id}: -f json: {exc}{kept}") from None
        if opts.output_format == "code" and text is not None and self.shell is not None:
            self.shell.set_next_input(aix_display.extract_code(text), replace=False)
        if opts.schema is not None:
            parsed = getattr(response, "parsed", None)
            if parsed is None:
                answer = aix_display.field_text(response.data)[:200]
                raise RunFailed(f"{model_id}: the answer does not fit --schema {opts.schema}: {answer!r}")
            return parsed
        return response

    def _prepare_data(self, run_input: mi.RunInput, schema: Any) -> Any:
        if run_input.kind != "file":
            return run_input.data
        primary = schema.primary_input()
        media = primary is not None and primary.data_type in ("audio", "image", "video", "file")
        if media:
            return run_input.data  # the core sends a local file as the model's media input
        try:
            with open(run_input.data, encoding="utf-8") as handle:
                return handle.read()
        except UnicodeDecodeError:
            raise MagicUsageError(
                f"{run_input.source!r} is not a UTF-8 text file and this model takes text"
            ) from None

    @property
    def completion(self) -> CompletionSource:
        """Model ids and schemas for tab completion (what the commands fetched, refreshed as needed)."""
        if self._completion is None:
            from aix_jupyter.magics.complete import CompletionSource

            self._completion = CompletionSource(lambda: self.models_page_size)
        return self._completion

    def _known_ids(self) -> list[str]:
        return self._completion.known_ids() if self._completion is not None else []

    @property
    def jobs(self) -> dict[str, str]:
        """Poll URL -> model id of the jobs started from this kernel (``%aix poll/cancel`` use it)."""
        return dict(self._jobs)

    def _progress(self, model_id: str, enabled: bool) -> Any:
        if not enabled or self.progress == "off":
            return None
        from aix_jupyter.widgets.progress import make_progress

        return make_progress(model_id, mode=self.progress)

    def _hook(self, model_id: str, progress: Any) -> Any:
        """The run's ``on_event``: remember the job's poll URL, then feed the progress."""

        def on_event(event: Any) -> None:
            if event.poll_url:
                self._jobs.setdefault(event.poll_url, model_id)
            if progress is not None:
                progress(event)

        return on_event

    def _run_kwargs(self, opts_timeout: float | None) -> dict[str, Any]:
        return {
            "timeout": opts_timeout or self.timeout,
            "wait_time": self.poll_interval,
            "max_wait": self.poll_cap,
        }

    def _finish(self, response: Any, model_id: str, provenance: dict[str, Any], started: float) -> Any:
        status = str(getattr(response.status, "value", response.status))
        if status == "FAILED":
            message = " ".join(str(response.error_message or "the model failed without a message").split())
            if "cancelled" in message.lower():
                raise RunCancelled(f"{model_id}: {message}")
            url = getattr(response, "url", None)
            if not response.completed:  # gave up waiting (timeout): say how to wait longer
                if url and "sync_poll(response.url)" in message:
                    self._jobs.setdefault(url, model_id)
                    message = message.replace("sync_poll(response.url)", f"%aix poll {url} --wait")
                message += "; give it more time with --timeout SECONDS or %config AixMagics.timeout"
            raise RunFailed(f"{model_id}: {message}")
        aix_display.remember(
            response, aix_display.Provenance(wall_time=time.monotonic() - started, **provenance)
        )
        return response

    def _wait(
        self,
        model: Model,
        data: Any,
        opts: ma.RunOptions,
        provenance: dict[str, Any],
        run: Callable[..., Any] | None = None,
        **extra: Any,
    ) -> Any:
        """Run and wait, with progress; ``run`` replaces ``model.run`` (a conversation's ``send``)."""
        progress = self._progress(model.id, opts.progress)
        started = time.monotonic()
        try:
            response = (run or model.run)(
                data,
                parameters=opts.parameters,
                on_event=self._hook(model.id, progress),
                cache=_cache_choice(opts),
                **self._run_kwargs(opts.timeout),
                **extra,
            )
        except KeyboardInterrupt:
            raise RunCancelled(f"{model.id}: interrupted; the run was cancelled on the server") from None
        finally:
            if progress is not None:
                progress.close()
        return self._finish(response, model.id, provenance, started)

    def _stream(
        self,
        model: Model,
        data: Any,
        opts: ma.RunOptions,
        provenance: dict[str, Any],
        open_stream: Callable[..., Any] | None = None,
    ) -> Any:
        """Stream into a ``StreamView``; ``open_stream`` replaces ``model.run_stream`` (a
        conversation's ``stream``)."""
        from aix_jupyter.core import recall
        from aix_jupyter.core.enums import ResponseStatus  # (enums cost ~1 ms: not at %load_ext)
        from aix_jupyter.core.response import ModelResponse

        view = aix_display.StreamView(model.id)
        started = time.monotonic()
        view.start()
        streamer = None
        try:
            streamer = (open_stream or model.run_stream)(
                data, parameters=opts.parameters, cache=_cache_choice(opts)
            )
            for chunk in streamer:
                status = str(getattr(chunk.status, "value", chunk.status))
                if status == "FAILED":
                    self._finish(chunk, model.id, provenance, started)
                text = chunk.data if isinstance(chunk.data, str) else str(chunk.data or "")
                view.chunk(text)
        except KeyboardInterrupt:
            view.abort()
            raise RunCancelled(f"{model.id}: interrupted; the stream was cancelled") from None
        except BaseException:
            view.abort()
            raise
        finally:
            if streamer is not None:
                streamer.close()
        text = getattr(streamer, "text", None) or view.text
        response = ModelResponse(status=ResponseStatus.SUCCESS, data=text, completed=True)
        response.run_time = round(time.monotonic() - started, 3)
        recall.carry(response, getattr(streamer, "recall", None))  # its request key, and whether stored
        provenance = {**provenance, "streamed": True}
        response = self._finish(response, model.id, provenance, started)
        view.finish(response, aix_display.provenance_of(response))
        return response

    def _submit(self, model: Model, data: Any, opts: ma.RunOptions, provenance: dict[str, Any]) -> Any:
        started = time.monotonic()
        response = model.run_async(data, parameters=opts.parameters, cache=_cache_choice(opts))
        response = self._finish(response, model.id, provenance, started)
        if response.url:
            self._jobs[response.url] = model.id
        return response

    # -- map / compare / usage -----------------------------------------------------------------
    def _batch_progress(self, label: str, enabled: bool) -> Any:
        if not enabled or self.progress == "off":
            return None
        from aix_jupyter.widgets.progress import make_batch_progress

        return make_batch_progress(label, mode=self.progress)

    def _map(self, args: ma.BatchArgs) -> aix_display.Table:
        from aix_jupyter.core.batch_result import BatchInterrupted, _never_ran

        model_id = mi.interpolate(args.model_ids[0], self._ns)
        model = self._get_model(model_id)
        schema = model.model_params
        opts = ma.parse_run_options(
            args.rest,
            schema,
            command="map",
            model_id=model.id,
            interpolate_value=lambda s: mi.interpolate(s, self._ns),
        )
        source_name = (opts.input_text or "").strip()
        inputs, frame = mi.batch_source(source_name, self._ns, column=opts.column, into=opts.into)
        schema.validate_request(opts.parameters, data_given=True)
        progress = self._batch_progress(model.id, opts.progress)
        try:
            result = model.map(
                inputs,
                opts.parameters or None,
                concurrency=opts.concurrency or 8,
                timeout=opts.timeout or self.timeout,
                on_event=progress,
                cache=_cache_choice(opts),
            )
        except BatchInterrupted as exc:
            result = exc.results
            self._keep_batch(result, opts, frame)
            kept = f"; the partial BatchResult is in {opts.out}" if opts.out else ""
            ended = len(result) - sum(1 for r in result if _never_ran(r))
            raise RunCancelled(
                f"{model.id}: interrupted after {ended} of {len(result)} items; "
                f"the jobs in flight were cancelled{kept}"
            ) from None
        finally:
            if progress is not None:
                progress.close()
        self._keep_batch(result, opts, frame)
        return batch_table(result)

    def _keep_batch(self, result: Any, opts: ma.RunOptions, frame: Any) -> None:
        """Store the batch in ``-o VAR``, write its outputs into ``--into COL``."""
        if opts.out:
            self._user_ns[opts.out] = result
        if frame is not None and opts.into:
            frame[opts.into] = result.data

    def _compare(self, args: ma.BatchArgs, cell: str | None) -> Any:
        from aix_jupyter.core.compare import ComparisonInterrupted, compare

        models = [self._get_model(mi.interpolate(m, self._ns)) for m in args.model_ids]
        merged: dict[str, Any] = {}
        for model in models:
            for name, param in model.model_params.items():
                merged.setdefault(name, param)
        label = " vs ".join(m.id for m in models)
        opts = ma.parse_run_options(
            args.rest,
            merged,
            command="compare",
            model_id=label,
            interpolate_value=lambda s: mi.interpolate(s, self._ns),
        )
        _take_cell(opts, cell)
        run_input = mi.resolve_input(opts.input_text, self._ns)
        if run_input.kind == "none":
            raise MagicUsageError(
                f"compare: give the input after -- (or as the cell body); {ma.usage('compare')}"
            )
        data = self._prepare_data(run_input, models[0].model_params)
        progress = self._batch_progress(label, opts.progress)
        try:
            comparison = compare(
                models,
                data,
                opts.parameters or None,
                concurrency=opts.concurrency or 8,
                timeout=opts.timeout or self.timeout,
                on_event=progress,
                cache=_cache_choice(opts),
            )
        except ComparisonInterrupted as exc:
            if opts.out:
                self._user_ns[opts.out] = exc.results
            kept = f"; the partial Comparison is in {opts.out}" if opts.out else ""
            raise RunCancelled(f"{label}: interrupted; the jobs in flight were cancelled{kept}") from None
        finally:
            if progress is not None:
                progress.close()
        if opts.out:
            self._user_ns[opts.out] = comparison
        return comparison

    def _usage(self) -> aix_display.Table:
        from aix_jupyter.progress import plural

        total = self.ledger.totals()
        counts = [
            plural(total.runs, "run"),
            plural(total.streams, "stream"),
            f"{total.batches} batch{'' if total.batches == 1 else 'es'}",
        ]
        cached = f", {total.cached} cached" if total.cached else ""
        saved = f" ({total.saved:.4g} saved by the cache and cassettes)" if total.cached else ""
        note = (
            f"{', '.join(counts)}; {plural(total.items, 'item')}, {total.failures} failed{cached}; "
            f"{total.credits:.4g} credits in this kernel{saved}"
        )
        columns, rows = list(COLUMNS), self.ledger.rows()
        if not total.cached:  # the cached/saved columns appear once a store answered something
            keep = [i for i, name in enumerate(columns) if name not in STORE_COLUMNS]
            columns, rows = [columns[i] for i in keep], [[row[i] for i in keep] for row in rows]
        table = aix_display.Table(columns, rows, note=note)
        table.usage = self.ledger  # type: ignore[attr-defined]
        return table

    def _path(self, raw: str) -> str:
        """A path of the magic's line: ``{name}`` filled in, ``~`` expanded."""
        return os.path.expanduser(mi.interpolate(raw, self._ns))

    # -- poll / cancel ---------------------------------------------------------------------------
    def _job_model(self, url: str, handle: Any) -> Model:
        from aix_jupyter.core.model import Model

        model_id = self._jobs.get(url)
        if model_id is None and handle is not None:
            prov = aix_display.provenance_of(handle)
            model_id = prov.model_id if prov else None
        return Model(id=model_id or "job")

    def _poll(self, args: ma.PollArgs) -> Any:
        url, handle = mi.resolve_target(mi.interpolate(args.target, self._ns), self._ns)
        model = self._job_model(url, handle)
        handle_prov = aix_display.provenance_of(handle) if handle is not None else None
        provenance: dict[str, Any] = {
            "model_id": model.id,
            "version": handle_prov.version if handle_prov else None,
            "parameters": dict(handle_prov.parameters) if handle_prov else {},
        }
        started = time.monotonic()
        if args.wait:
            progress = self._progress(model.id, args.progress)
            try:
                response = model.sync_poll(url, on_event=progress, **self._run_kwargs(args.timeout))
            except KeyboardInterrupt:
                raise RunCancelled(f"{model.id}: interrupted; the run was cancelled on the server") from None
            finally:
                if progress is not None:
                    progress.close()
        else:
            response = model.poll(url)
        response = self._finish(response, model.id, provenance, started)
        if args.out:
            self._user_ns[args.out] = response
        return response

    def _cancel(self, args: ma.TargetArgs) -> None:
        url, handle = mi.resolve_target(mi.interpolate(args.target, self._ns), self._ns)
        model = self._job_model(url, handle)
        if model.cancel_run(url):
            print(f"{model.id}: run cancelled")
        else:
            print(f"{model.id}: nothing to cancel (the run had already ended)")

    # -- models / info / widget / config / login -------------------------------------------------
    def _models(self, args: ma.ModelsArgs) -> aix_display.Table:
        from aix_jupyter.core.factory import ModelFactory

        found = ModelFactory.list(
            query=args.query, function=args.function, page_size=self.models_page_size, **args.list_arguments()
        )
        models = list(found["items"])
        self.completion.remember_ids(m.id for m in models)
        rows = [
            [
                m.id,
                m.name,
                aix_display.field_text(m.function),
                "yes" if m.supports_streaming else "no",
                aix_display.name_text(m.supplier),
                aix_display.price_text(m.cost),
            ]
            for m in models
        ]
        total = found.get("total", len(models))
        noun = "model" if total == 1 else "models"
        note = f"{len(models)} of {total} {noun}" if total != len(models) else f"{len(models)} {noun}"
        table = aix_display.Table(
            ["id", "name", "function", "streaming", "supplier", "price"], rows, note=note
        )
        table.models = models  # type: ignore[attr-defined]
        return table

    def _browse(self, args: ma.BrowseArgs) -> Any:
        from aix_jupyter.widgets import ModelBrowser

        return ModelBrowser(args.query, args.function, timeout=self.timeout, **args.list_arguments())

    def _info(self, model_id: str, model: Model | None = None) -> aix_display.Card:
        model = model or self._get_model(model_id)
        params = model.model_params
        fields = [
            ("id", model.id),
            ("supplier", aix_display.name_text(model.supplier)),
            ("function", aix_display.field_text(model.function)),
            ("version", model.version),
            ("streaming", "yes" if model.supports_streaming else "no"),
            ("price", aix_display.price_text(model.cost)),
        ]
        if model.description:
            fields.append(("description", model.description))
        help_lines = [f"--{p.help()}" for p in params.values()] or ["(none)"]
        primary = params.primary_input()
        usage = [
            f"%aix run {model.id} [--name value ...] TEXT",
            f"%%aix run {model.id} [--name value ...]   (cell body = input)",
        ]
        if model.supports_streaming:
            usage.append(f"%aix stream {model.id} [--name value ...] TEXT")
        if primary is not None:
            usage.append(f"the input fills '{primary.name}'")
        card = aix_display.Card(
            model.name or model.id, fields, [("Parameters", help_lines), ("Usage", usage)]
        )
        card.model = model  # type: ignore[attr-defined]
        return card

    def _widget(self, model_id: str) -> Any:
        from aix_jupyter.widgets import ModelWidget

        return ModelWidget(self._get_model(model_id), timeout=self.timeout)

    def _config(self) -> aix_display.Card:
        from aix_jupyter.core.config import describe_config, resolve_endpoints  # (~1 ms: not at %load_ext)

        info = describe_config()
        from aix_jupyter.magics.stores import stores_state

        info.update(stores_state())
        embedded = sys.modules.get("aix_jupyter.backend.embedded")
        if info.get("mode") == "embedded" and embedded is not None and embedded.is_running():
            base = resolve_endpoints().backend_url  # already running: this starts nothing
            info.update(
                run_url=base + "/api/v1/execute", backend_url=base, note="the embedded backend is running"
            )
        fields = [
            (str(k), aix_display.field_text(v) if v not in (None, "", []) else "-")
            for k, v in info.items()
            if k != "note"
        ]
        notes = [str(info["note"])] if info.get("note") else []
        magic = [
            f"AixMagics.{name} = {getattr(self, name)!r}" for name in sorted(self.trait_names(config=True))
        ]
        card = aix_display.Card("aix configuration", fields, [("Notes", notes), ("Magic settings", magic)])
        card.config = info  # type: ignore[attr-defined]
        return card

    def _login(self) -> None:
        from aix_jupyter.core.config import describe_config, set_api_key

        try:
            import getpass

            key = getpass.getpass("aiXplain API key (kept for this kernel only): ")
        except Exception as exc:  # ipykernel without stdin (headless executors)
            if type(exc).__name__ == "StdinNotImplementedError":
                raise ConfigurationError(
                    "%aix login needs an interactive frontend; set TEAM_API_KEY in the environment instead"
                ) from None
            raise
        aix_display.register_secret(key.strip())
        set_api_key(key)
        info = describe_config()
        print(f"API key set for this kernel only; runs go to {info.get('run_url') or info.get('mode')}")


def _take_cell(opts: ma.RunOptions, cell: str | None, what: str = "input") -> None:
    """A ``%%aix`` cell body is the input (``what``: how errors name it); an input on the line too is an
    error."""
    if cell is None:
        return
    if opts.input_text is not None:
        raise MagicUsageError(
            f"{what} given twice: {opts.input_text!r} on the %%aix line and the cell body; keep one"
        )
    opts.input_text = cell


def run_provenance(model: Any, opts: ma.RunOptions) -> dict[str, Any]:
    """The ``Provenance`` fields of a run or a chat turn of ``model`` with ``opts``."""
    return dict(
        model_id=model.id,
        version=model.version,
        parameters=dict(opts.parameters),
        output_format=opts.output_format,
    )


def _takes_response_format(model: Any) -> bool:
    """Does ``model.run`` take ``response_format=`` (an ``LLM``: a text-generation model)?"""
    from aix_jupyter.core.llm import LLM

    return isinstance(model, LLM)


def _cache_choice(opts: ma.RunOptions) -> bool | None:
    """The core call's ``cache``: False for ``--no-cache``, else None (``%aix cache`` decides)."""
    return False if opts.no_cache else None


BATCH_ROWS = 20  # items a %aix map summary table lists


def batch_table(result: Any, rows: int = BATCH_ROWS) -> aix_display.Table:
    """The summary of a ``BatchResult``: its counts, and its first items with output or error."""
    from aix_jupyter.core.batch_result import _short

    index = result.input_index if result.input_index is not None else range(len(result))
    lines = []
    for i, (key, data, response) in enumerate(zip(index, result.inputs, result, strict=False)):
        if i >= rows:
            break
        output = response.data if response.ok else response.error_message
        media = aix_display.media_cell(output) if response.ok else None
        lines.append(
            [
                key,
                _short(data, 40),
                aix_display.field_text(response.status),
                _short(output, 60) if media is None else aix_display.HtmlCell(_short(output, 60), media),
                aix_display.credits_text(response),
                f"{float(response.run_time or 0):.2f} s",
            ]
        )
    note = result._counts()
    if len(result) > rows:
        note += f" (first {rows} of {len(result)} shown; -o VAR keeps them all)"
    table = aix_display.Table(["#", "input", "status", "output", "credits", "run time"], lines, note=note)
    table.result = result  # type: ignore[attr-defined]
    return table


# -- extension entry points -----------------------------------------------------------------------
# Everything registered here imports its module on first use: loading the extension stays light.
_RESPONSE_TYPE = ("aix_jupyter.core.response", "ModelResponse")  # registered by name: not imported


def _show_response(response: Any) -> None:
    """IPython display hook for ModelResponse: one rich ``display_data`` (see display.py)."""
    aix_display.show_response(response)


def _table_html(table: Any) -> str:
    """A ``BatchResult`` or ``Comparison`` as HTML, its media outputs playable (see display.py)."""
    return str(table.html(media=aix_display.media_cell))


_TABLE_TYPES = {
    ("aix_jupyter.core.batch_result", "BatchResult"): _table_html,
    ("aix_jupyter.core.compare", "Comparison"): _table_html,
}


def _keep_question_marks(lines: list[str]) -> list[str]:
    """Input transformer: a ``%aix`` line ending in ``?`` is a run, not IPython's help."""
    if any("%aix" in line and line.rstrip().endswith("?") for line in lines):
        return mi.keep_question_marks(lines)  # type: ignore[no-any-return]
    return lines


_loaded: dict[int, tuple[AixMagics, Any, Any]] = {}


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics, the completion matcher, the input transformer and the display hook;
    the usage ledger starts observing every run of the kernel (``core.events``: no httpx, no pydantic)."""
    from aix_jupyter.core.events import observe_session

    if id(ipython) in _loaded:
        return
    magics = AixMagics(shell=ipython)
    ipython.register_magics(magics)
    unobserve = observe_session(magics.ledger.record)

    @context_matcher()
    def aix_matcher(context: Any) -> Any:
        from aix_jupyter.magics.complete import complete

        return complete(context, magics.completion, magics.default_model)

    completer = getattr(ipython, "Completer", None)
    if completer is not None:
        completer.custom_matchers.append(aix_matcher)
    ipython.display_formatter.ipython_display_formatter.for_type_by_name(*_RESPONSE_TYPE, _show_response)
    html_formatter = ipython.display_formatter.formatters["text/html"]
    for type_name, show in _TABLE_TYPES.items():
        html_formatter.for_type_by_name(*type_name, show)
    cleanup = getattr(ipython, "input_transformers_cleanup", None)
    if cleanup is not None and _keep_question_marks not in cleanup:
        cleanup.append(_keep_question_marks)
    _loaded[id(ipython)] = (magics, aix_matcher, unobserve)


def unload_ipython_extension(ipython: Any) -> None:
    """Remove the magics, the completion matcher, the input transformer and the display hook."""
    entry = _loaded.pop(id(ipython), None)
    if entry is None:
        return
    magics, matcher, unobserve = entry
    unobserve()
    for kind in ("line", "cell"):
        ipython.magics_manager.magics[kind].pop("aix", None)
    completer = getattr(ipython, "Completer", None)
    if completer is not None and matcher in completer.custom_matchers:
        completer.custom_matchers.remove(matcher)
    if magics in getattr(ipython, "configurables", []):
        ipython.configurables.remove(magics)
    formatter = ipython.display_formatter.ipython_display_formatter
    html_formatter = ipython.display_formatter.formatters["text/html"]
    for printers, type_name in [(formatter, _RESPONSE_TYPE)] + [(html_formatter, t) for t in _TABLE_TYPES]:
        printers.deferred_printers.pop(type_name, None)
        module = sys.modules.get(type_name[0])
        if module is not None:
            printers.type_printers.pop(getattr(module, type_name[1]), None)
    cleanup = getattr(ipython, "input_transformers_cleanup", None)
    if cleanup is not None and _keep_question_marks in cleanup:
        cleanup.remove(_keep_question_marks)
