"""``ModelBrowser``: search the configured backend's models, page through them, open one as a widget.

::

    from aix_jupyter import ModelBrowser
    ModelBrowser()                         # a search box, a function filter, a page of models
    ModelBrowser("sentiment", function="sentiment-analysis")
    ModelBrowser(source_languages="en", sort_by=SortBy.NAME)   # ModelFactory.list's filters
    %aix browse sentiment --sort -created  # the same from the magic

It pages through ``ModelFactory.list`` on whatever backend is configured (embedded, ``aix serve``,
the platform), filtered by function, source / target language (a code such as "en" or "en-US")
and sorted as chosen. Typing in the search box or a language box searches once the typing pauses
(``debounce`` seconds: one request per pause, not per key). Choosing a row opens a ``ModelWidget``
for that model below the table, with a ready ``%aix run MODEL`` line to copy. A failed request is
shown inline, in one line, and the browser stays usable. The API key stays a Python attribute: it
never reaches widget state (what a frontend or a saved notebook sees).

Every request runs in a worker thread, never in the kernel's: a slow server does not freeze the
notebook. The widgets are updated from the worker when the answer comes; an answer to a search that
a newer one replaced is dropped (so is a model opened after another was chosen). ``wait()`` waits
for the requests in flight (code that reads ``models`` right after a search calls it first).

Outside a live widget frontend (nbconvert, nbval, terminal IPython; see ``aix_jupyter.frontend``)
the browser shows its first page as a table; in a live one the same table is the saved
notebook's fallback for viewers that do not render widgets.
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import ipywidgets as w
from IPython.display import publish_display_data

from aix_jupyter import frontend
from aix_jupyter.display import Table, field_text, name_text, price_text, redact

COLUMNS = ["name", "id", "supplier", "function", "streaming", "price"]
#: the sort choices: (label, ``--sort`` word of the magic); "" is the server's order
SORT_OPTIONS: list[tuple[str, str]] = [
    ("server's order", ""),
    ("name, A to Z", "name"),
    ("name, Z to A", "-name"),
    ("newest first", "-created"),
    ("oldest first", "created"),
    ("cheapest first", "price"),
    ("dearest first", "-price"),
    ("most popular first", "-popular"),
]
_CATALOG_PAGE = 100  # how many models the function filter is first filled from

_STYLE = """<style>
.aix-model-browser .aix-browse-table { grid-gap: 0 12px; align-items: center; }
.aix-model-browser .aix-browse-cells, .aix-model-browser .aix-browse-cells > .widget-html-content {
  display: contents; }
.aix-model-browser .aix-browse-cells span { white-space: nowrap; line-height: 28px; }
.aix-model-browser .aix-browse-head span { font-weight: bold; }
.aix-model-browser .aix-browse-error { color: var(--jp-error-color1, #d32f2f); }
.aix-model-browser .aix-browse-open button, .aix-model-browser button.aix-browse-open { text-align: left; }
</style>"""


class Cancellable(Protocol):
    """What ``timer`` returns: something started that can be cancelled (``threading.Timer`` fits)."""

    def start(self) -> None:
        """Start waiting."""

    def cancel(self) -> None:
        """Stop waiting (the callback is not called)."""


TimerFactory = Callable[[float, Callable[[], None]], Cancellable]


def model_row(model: Any) -> list[str]:
    """A model's cells in the browser's columns (name, id, supplier, function, streaming, price)."""
    return [
        str(model.name or model.id),
        model.id,
        name_text(model.supplier),
        field_text(model.function),
        "yes" if model.supports_streaming else "no",
        price_text(model.cost),
    ]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return str(redact(text))


class ModelBrowser(w.VBox):
    """Search, filter and page the configured backend's models; choose one to open its ``ModelWidget``.

    Attributes: ``models`` (the models of the page shown), ``total`` (how many match), ``page``
    (0-based), ``selected`` (the chosen model id or None), ``model_widget`` (the ``ModelWidget``
    opened for it), ``error`` (the last request's error line, "" when it worked), ``loading``
    (whether the current search is still out).
    """

    debounce: float = 0.3  # seconds the search box waits after the last key before searching

    def __init__(
        self,
        query: str = "",
        function: Any = None,
        *,
        source_languages: Any = None,
        target_languages: Any = None,
        sort_by: Any = None,
        sort_order: Any = None,
        page_size: int = 10,
        api_key: str | None = None,
        timeout: float = 300,
        timer: TimerFactory | None = None,
    ) -> None:
        if not isinstance(page_size, int) or not 1 <= page_size <= 100:
            raise ValueError(f"ModelBrowser: page_size must be an integer from 1 to 100, got {page_size!r}")
        sort = "" if sort_by in (None, "") else _sort_word(sort_by, sort_order)
        self.page_size = page_size
        self.timeout = timeout
        self._api_key = api_key  # a Python attribute only: never a trait, never in widget state
        self._timer_factory: TimerFactory = timer or _thread_timer
        self._pending: Cancellable | None = None
        self._lock = threading.RLock()
        self._generation = 0  # the latest search; an older one that returns late is dropped
        self._selection = 0  # the latest model chosen; an older one that arrives late is dropped
        self._workers: list[threading.Thread] = []
        self._loading = False
        self.models: list[Any] = []
        self.total = 0
        self.page = 0
        self.selected: str | None = None
        self.model_widget: Any = None
        self._error = ""
        function = field_text(function) or None

        self.search_box = w.Text(
            value=query or "",
            placeholder="search models",
            description="Search",
            continuous_update=True,
            layout=w.Layout(width="320px"),
        )
        self.search_box.add_class("aix-browse-search")
        self.function_filter = w.Dropdown(
            options=self._function_options([function] if function else []),
            value=function or "",
            description="Function",
            layout=w.Layout(width="320px"),
        )
        self.function_filter.add_class("aix-browse-function")
        self.source_filter = _language_box("From", "source language", source_languages)
        self.source_filter.add_class("aix-browse-source-language")
        self.target_filter = _language_box("To", "target language", target_languages)
        self.target_filter.add_class("aix-browse-target-language")
        self.sort_choice = w.Dropdown(
            options=SORT_OPTIONS, value=sort, description="Sort", layout=w.Layout(width="240px")
        )
        self.sort_choice.add_class("aix-browse-sort")
        self.prev_button = w.Button(description="Previous", icon="chevron-left", disabled=True)
        self.next_button = w.Button(description="Next", icon="chevron-right", disabled=True)
        self.prev_button.add_class("aix-browse-prev")
        self.next_button.add_class("aix-browse-next")
        self.page_label = w.HTML(value="")
        self.page_label.add_class("aix-browse-page")
        self.error_line = w.HTML(value="")
        self.error_line.add_class("aix-browse-error")
        self.table = w.GridBox(layout=w.Layout(grid_template_columns="repeat(6, max-content)"))
        self.table.add_class("aix-browse-table")
        self.run_line = w.Text(value="", description="Run it", layout=w.Layout(width="100%", display="none"))
        self.run_line.add_class("aix-browse-run-line")
        self.detail = w.VBox(layout=w.Layout(width="100%"))
        self.detail.add_class("aix-browse-detail")

        # set while the code itself changes a control (no search then): per thread, as observers run in
        # the thread that made the change, so a worker's quiet change never hides the user's typing
        self._quiet_here = threading.local()
        self.search_box.observe(self._typed, names="value")
        self.source_filter.observe(self._typed, names="value")
        self.target_filter.observe(self._typed, names="value")
        self.function_filter.observe(self._filtered, names="value")
        self.sort_choice.observe(self._filtered, names="value")
        self.prev_button.on_click(lambda _b: self.go(self.page - 1))
        self.next_button.on_click(lambda _b: self.go(self.page + 1))
        super().__init__(
            children=[
                w.HTML(value=_STYLE),
                w.HBox([self.search_box, self.function_filter]),
                w.HBox([self.source_filter, self.target_filter, self.sort_choice]),
                self.error_line,
                self.table,
                w.HBox(
                    [self.prev_button, self.page_label, self.next_button],
                    layout=w.Layout(align_items="center"),
                ),
                self.run_line,
                self.detail,
            ],
            layout=w.Layout(width="100%"),
        )
        self.add_class("aix-model-browser")
        self._next_generation()
        self._start(self._first_page, self._generation, self._arguments(0))

    # -- state ----------------------------------------------------------------------------------
    @property
    def _quiet(self) -> bool:
        """Whether this thread is changing a control itself (its observers then do not search)."""
        return bool(getattr(self._quiet_here, "on", False))

    @_quiet.setter
    def _quiet(self, value: bool) -> None:
        self._quiet_here.on = value

    @property
    def query(self) -> str:
        """The search box's text."""
        return str(self.search_box.value)

    @property
    def function(self) -> str | None:
        """The function filter's slug, or None for every function."""
        return self.function_filter.value or None

    @property
    def source_language(self) -> str | None:
        """The source-language box's code, or None for any."""
        return self.source_filter.value.strip() or None

    @property
    def target_language(self) -> str | None:
        """The target-language box's code, or None for any."""
        return self.target_filter.value.strip() or None

    @property
    def sort(self) -> str | None:
        """The sort chosen, as the magic's ``--sort`` word ("name", "-created", ...), or None."""
        return self.sort_choice.value or None

    @property
    def error(self) -> str:
        """The last request's error (one line), or "" when it worked."""
        return self._error

    @property
    def loading(self) -> bool:
        """Whether the current search's request is still out."""
        return self._loading

    def wait(self, timeout: float | None = None) -> ModelBrowser:
        """Wait (at most ``timeout`` seconds) for the requests in flight; returns the browser."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                workers = [t for t in self._workers if t.is_alive()]
                self._workers = workers
            if not workers:
                return self
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return self
            workers[0].join(left)

    def __repr__(self) -> str:
        return f"ModelBrowser(query={self.query!r}, function={self.function!r})"

    # -- searching ------------------------------------------------------------------------------
    def _typed(self, _change: Any = None) -> None:
        """The search box changed: search once typing pauses for ``debounce`` seconds."""
        if self._quiet:
            return
        with self._lock:
            if self._pending is not None:
                self._pending.cancel()
            self._pending = self._timer_factory(self.debounce, self._debounced)
            self._pending.start()

    def _filtered(self, _change: Any = None) -> None:
        """The function filter changed: search at once (from page 1)."""
        if not self._quiet:
            self.search()

    def _debounced(self) -> None:
        with self._lock:
            self._pending = None
        self.search()

    def search(self, query: str | None = None, function: Any = ...) -> ModelBrowser:
        """Search now (from page 1) with the box's text and the filters, or with the values given.

        The request goes out in a worker thread (``wait()`` waits for it)."""
        with self._lock:
            if self._pending is not None:  # a search is starting now: the pending one is not needed
                self._pending.cancel()
                self._pending = None
        if query is not None:
            self._set_quietly(query)
        if function is not ...:
            slug = field_text(function) or None
            self._add_functions([slug] if slug else [])
            self._quiet = True
            try:
                self.function_filter.value = slug or ""
            finally:
                self._quiet = False
        return self.go(0)

    def go(self, page: int) -> ModelBrowser:
        """Show page ``page`` (0-based) of the current search (fetched in a worker thread)."""
        self._next_generation()
        self._start(self._show_page, self._generation, self._arguments(max(page, 0)))
        return self

    def _next_generation(self) -> None:
        with self._lock:
            self._generation += 1
            self._loading = True
        self.page_label.value = "searching…"

    def _arguments(self, page: int) -> dict[str, Any]:
        """The current search's ``ModelFactory.list`` arguments (read here, in the caller's thread)."""
        kwargs: dict[str, Any] = {
            "query": self.query,
            "function": self.function,
            "source_languages": self.source_language,
            "target_languages": self.target_language,
            "page_number": page,
            "page_size": self.page_size,
        }
        if self.sort:
            from aix_jupyter.core.enums import sort_of_word

            kwargs["sort_by"], kwargs["sort_order"] = sort_of_word(self.sort)
        return kwargs

    def _start(self, work: Callable[..., None], *args: Any) -> None:
        """Run ``work(*args)`` in a worker thread (requests never run in the kernel's thread)."""
        thread = threading.Thread(target=work, args=args, name="aix-model-browser", daemon=True)
        with self._lock:
            self._workers = [t for t in self._workers if t.is_alive()] + [thread]
        thread.start()

    def _first_page(self, generation: int, kwargs: dict[str, Any]) -> None:
        self._fill_functions()
        self._show_page(generation, kwargs)

    def _show_page(self, generation: int, kwargs: dict[str, Any]) -> None:
        """In a worker: fetch a page; show it unless a newer search started meanwhile (it wins)."""
        try:
            found = self._list(**kwargs)
        except Exception as exc:  # shown inline, in one line; the browser stays usable
            with self._lock:
                if generation == self._generation:
                    self._loading = False
                    self._show_error(_one_line(exc))
                    self._paint()
            return
        with self._lock:  # held while painting: an older answer cannot paint over a newer one
            if generation != self._generation:
                return
            self._error = ""
            self.error_line.value = ""
            self.models = list(found["items"])
            self.total = int(found.get("total") or len(self.models))
            self.page = kwargs["page_number"]
            self._loading = False
            self._add_functions(field_text(m.function) for m in self.models)
            self._paint()

    def _list(self, **kwargs: Any) -> dict[str, Any]:
        from aix_jupyter.core.factory import ModelFactory

        return ModelFactory.list(api_key=self._api_key, **kwargs)

    def _set_quietly(self, query: str) -> None:
        self._quiet = True
        try:
            self.search_box.value = query
        finally:
            self._quiet = False

    def _show_error(self, line: str) -> None:
        self._error = line
        self.error_line.value = f'<span class="aix-browse-error-text">{html.escape(line)}</span>'

    # -- the function filter --------------------------------------------------------------------
    @staticmethod
    def _function_options(slugs: list[str]) -> list[tuple[str, str]]:
        # "" for every function: a Dropdown's None means "nothing chosen" (it would show blank)
        return [("all functions", ""), *[(s, s) for s in sorted(set(slugs))]]

    def _fill_functions(self) -> None:
        """Fill the filter from the catalog (the functions of its first models); in a worker."""
        try:
            found = self._list(query="", function=None, page_number=0, page_size=_CATALOG_PAGE)
        except Exception:  # the search that follows shows the error (the same server answers it)
            return
        self._add_functions(field_text(m.function) for m in found["items"])

    def _add_functions(self, slugs: Any) -> None:
        known = [value for _label, value in self.function_filter.options if value]
        new = {s for s in slugs if s} - set(known)
        if not new:
            return
        current = self.function_filter.value
        self._quiet = True
        try:
            self.function_filter.options = self._function_options([*known, *new])
            self.function_filter.value = current
        finally:
            self._quiet = False

    # -- the table ------------------------------------------------------------------------------
    def _paint(self) -> None:
        # a row is two widgets: the opener button and one HTML holding its other cells, whose spans
        # join the table's grid (``display: contents``): a page costs few widgets in the saved state
        head = w.HTML(value=_cells(COLUMNS))
        head.add_class("aix-browse-cells")
        head.add_class("aix-browse-head")
        cells: list[w.Widget] = [head]
        for model in self.models:
            row = model_row(model)
            opener = w.Button(description=row[0], tooltip=f"open a ModelWidget for {model.id}")
            opener.add_class("aix-browse-open")
            opener.on_click(lambda _b, model_id=model.id: self.select(model_id))
            rest = w.HTML(value=_cells(row[1:]))
            rest.add_class("aix-browse-cells")
            cells += [opener, rest]
        self.table.children = cells
        pages = max(1, -(-self.total // self.page_size))
        noun = "model" if self.total == 1 else "models"
        self.page_label.value = f"page {self.page + 1} of {pages} · {self.total} {noun}"
        self.prev_button.disabled = self.page <= 0
        self.next_button.disabled = self.page + 1 >= pages

    def select(self, model_id: str) -> ModelBrowser:
        """Open a ``ModelWidget`` for ``model_id`` below the table (and its ``%aix run`` line).

        The model is fetched in a worker thread; ``model_widget`` is set when it arrives
        (``wait()`` waits for it). Returns the browser."""
        with self._lock:
            self._selection += 1
            selection = self._selection
        self._start(self._open, selection, model_id)
        return self

    def _open(self, selection: int, model_id: str) -> None:
        """In a worker: fetch the model and show its widget, unless another was chosen meanwhile."""
        from aix_jupyter.core.factory import ModelFactory
        from aix_jupyter.widgets.model_widget import ModelWidget

        try:
            model = ModelFactory.get(model_id, api_key=self._api_key)
        except Exception as exc:
            with self._lock:
                if selection == self._selection:
                    self._show_error(_one_line(exc))
            return
        with self._lock:
            if selection != self._selection:
                return
            widget = ModelWidget(model, api_key=self._api_key, timeout=self.timeout)
            self._error = ""
            self.error_line.value = ""
            self.selected = model_id
            self.model_widget = widget
            self.run_line.value = f"%aix run {model_id} "
            self.run_line.layout.display = None
            self.detail.children = [widget]

    # -- display --------------------------------------------------------------------------------
    def as_table(self) -> Table:
        """The page shown, as a static table (what viewers without widgets see)."""
        pages = max(1, -(-self.total // self.page_size))
        note = f"page {self.page + 1} of {pages} · {self.total} {'model' if self.total == 1 else 'models'}"
        if self._loading:
            note = f"{note} · searching…"
        if self._error:
            note = f"{note} · error: {self._error}"
        return Table(COLUMNS, [model_row(m) for m in self.models], note=note)

    def _ipython_display_(self) -> None:
        """The live browser (with the table as its fallback), or the table where widgets do not render
        (there the first page is waited for: it is all that shows; a live frontend is never kept waiting)."""
        live = frontend.renders_widgets()
        if not live:
            self.wait(self.timeout)
        fallback = self.as_table()._repr_mimebundle_()
        if not live:
            publish_display_data(fallback)
            return
        view = self._repr_mimebundle_()
        key = "application/vnd.jupyter.widget-view+json"
        publish_display_data({**fallback, **({key: view[key]} if key in view else {})})


def _sort_word(sort_by: Any, sort_order: Any) -> str:
    """The sort choice (a word such as "-created") of ``sort_by`` (a ``SortBy``, its name or value,
    or a sort word) and ``sort_order``; raises ParameterError (one line) for anything else."""
    from aix_jupyter.core.enums import SORT_WORDS, sort_of_word, word_of_sort
    from aix_jupyter.core.errors import ParameterError

    try:
        if isinstance(sort_by, str) and sort_by.removeprefix("-") in SORT_WORDS:
            by, order = sort_of_word(sort_by)
            return word_of_sort(by, order if sort_order is None or sort_by.startswith("-") else sort_order)
        return word_of_sort(sort_by, sort_order)
    except ParameterError as exc:
        raise ParameterError(f"ModelBrowser: {exc}") from None


def _language_box(description: str, placeholder: str, value: Any) -> w.Combobox:
    """A text box for a language code, offering the Language enum's codes (any code may be typed)."""
    from aix_jupyter.core.enums import Language

    code = "" if value is None else str(getattr(value, "code", value))
    return w.Combobox(
        value=code,
        options=sorted({m.code for m in Language}),
        placeholder=f"{placeholder} (e.g. en, en-US)",
        description=description,
        ensure_option=False,
        continuous_update=True,
        layout=w.Layout(width="240px"),
    )


def _cells(values: list[str]) -> str:
    return "".join(f'<span class="aix-browse-cell">{html.escape(v)}</span>' for v in values)


def _thread_timer(delay: float, callback: Callable[[], None]) -> Cancellable:
    timer = threading.Timer(delay, callback)
    timer.daemon = True
    return timer
