"""Tab completion of ``%aix`` lines: subcommands, model ids, parameter names and values, options.

``completions()`` is a pure function of the text before the cursor; ``CompletionSource`` supplies
the model ids and schemas it needs (asked of the core, cached for a minute); ``make_matcher`` turns
both into an IPython completion matcher.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from IPython.core.completer import SimpleCompletion, context_matcher

from aix_jupyter.core.errors import AixError
from aix_jupyter.magics.args import CACHE_ACTIONS, COMMAND_FLAGS, SUBCOMMANDS, tokens
from aix_jupyter.magics.errors import MagicUsageError

CACHE_SECONDS = 60.0
VALUE_OPTIONS = (
    "-o",
    "--out",
    "--timeout",
    "-p",
    "--param",
    "--concurrency",
    "--column",
    "--into",
    "--max-size",
    "--speed",
    "-f",
    "--format",
    "--schema",
    "--system",
    "--session",
)
FORMAT_OPTIONS = ("-f", "--format")  # their values: display.OUTPUT_FORMATS
SETTINGS_WORDS: dict[str, tuple[str, ...]] = {  # the first word of cache / record / replay
    "cache": CACHE_ACTIONS,
    "record": ("off",),
    "replay": ("off",),
}


def completions(
    before_cursor: str,
    *,
    model_ids: Callable[[], Iterable[str]],
    parameter_names: Callable[[str], Iterable[str] | Mapping[str, list[str]]],
    default_model: str = "",
) -> tuple[str, list[str]]:
    """``(fragment being completed, candidates)`` for the text of a ``%aix`` line before the cursor.

    ``parameter_names(model)`` gives a model's parameter names, or a mapping of them to the values
    they accept (options, true/false), which are then completed after ``--name``.
    """
    text = before_cursor.lstrip()
    for prefix in ("%%aix", "%aix"):
        if text.startswith(prefix) and (len(text) == len(prefix) or text[len(prefix)].isspace()):
            text = text[len(prefix) :]
            break
    else:
        return "", []
    try:
        done = tokens(text)
    except MagicUsageError:
        return "", []
    fragment = ""
    if done and done[-1].end == len(text):
        fragment = done[-1].value
        done = done[:-1]
    words = [t.value for t in done]

    def match(candidates: Iterable[str]) -> list[str]:
        return sorted({c for c in candidates if c.startswith(fragment)})

    if not words:
        return fragment, match([*SUBCOMMANDS, *model_ids()]) if fragment else list(SUBCOMMANDS)
    command = words[0]
    if command not in SUBCOMMANDS:  # ``%aix MODEL ...`` runs
        command, model = "run", command
        rest_words = words[1:]
    else:
        rest_words = words[1:]
        model = ""
    if command in ("help",):
        return fragment, match(SUBCOMMANDS) if len(rest_words) == 0 else []
    if command in ("info", "widget"):
        return fragment, match(model_ids()) if not rest_words else []
    if command in ("models", "browse"):
        return fragment, _complete_models(command, rest_words, fragment, match)
    if command in SETTINGS_WORDS:
        return fragment, _complete_settings(command, rest_words, fragment, match)
    if command in ("poll", "cancel", "config", "login", "usage"):
        return fragment, match(COMMAND_FLAGS[command]) if fragment.startswith("-") else []
    if command == "compare":
        return fragment, _complete_compare(rest_words, fragment, match, model_ids, parameter_names)
    # run / stream / async / map / chat
    if not model:
        if not rest_words and not fragment.startswith("-"):
            return fragment, match(model_ids())
        model = rest_words[0] if rest_words and not rest_words[0].startswith("-") else default_model
    if rest_words and rest_words[-1] in FORMAT_OPTIONS:
        from aix_jupyter.display import OUTPUT_FORMATS

        return fragment, match(OUTPUT_FORMATS)
    if rest_words and rest_words[-1] in VALUE_OPTIONS:
        return fragment, []
    params = parameter_names(model) if model else {}
    last = rest_words[-1] if rest_words else ""
    if last.startswith("--") and isinstance(params, Mapping) and params.get(last[2:]):
        return fragment, match(params[last[2:]])  # the values a parameter accepts
    if fragment.startswith("-") or fragment == "":
        names = [f"--{n}" for n in params]
        candidates = [*names, *COMMAND_FLAGS[command]]
        if fragment == "":
            return fragment, sorted(set(candidates)) if rest_words or model else []
        return fragment, match(candidates)
    return fragment, []


def _complete_models(
    command: str, rest_words: list[str], fragment: str, match: Callable[[Iterable[str]], list[str]]
) -> list[str]:
    """``models`` / ``browse``: the options, then each one's values (functions, language codes, sorts)."""
    from aix_jupyter.core.enums import SORT_WORDS, Function, Language

    last = rest_words[-1] if rest_words else ""
    if last == "--sort":
        return match(w for key in SORT_WORDS for w in (key, f"-{key}"))
    if last in ("--source-language", "--target-language"):
        return match(m.code for m in Language)
    if last == "--function":
        return match(f.value for f in Function)
    return match(COMMAND_FLAGS[command]) if fragment.startswith("-") else []


def _complete_settings(
    command: str, rest_words: list[str], fragment: str, match: Callable[[Iterable[str]], list[str]]
) -> list[str]:
    """``cache on|off|clear|info [--max-size SIZE]``, ``record PATH|off [--append]``,
    ``replay PATH|off [--speed X]``: the first word, then the options (a PATH is left to IPython's
    file completion: no candidates here)."""
    if rest_words and rest_words[-1] in VALUE_OPTIONS:
        return []
    words = [w for w in rest_words if not w.startswith("-")]
    if fragment.startswith("-"):
        if command == "cache" and (not words or words[0] != "on"):
            return []
        return [] if words == ["off"] else match(COMMAND_FLAGS[command])
    if not words and fragment:
        return match(SETTINGS_WORDS[command])
    if not words and not rest_words and command == "cache":
        return list(CACHE_ACTIONS)
    return []


def _complete_compare(
    rest_words: list[str],
    fragment: str,
    match: Callable[[Iterable[str]], list[str]],
    model_ids: Callable[[], Iterable[str]],
    parameter_names: Callable[[str], Iterable[str] | Mapping[str, list[str]]],
) -> list[str]:
    """``compare MODEL MODEL ... [OPTIONS] -- TEXT``: model ids until an option, then the options
    of every model named (their parameters, with values) and the magic's own."""
    if "--" in rest_words:
        return []  # the input text
    models = []
    for word in rest_words:
        if word.startswith("-"):
            break
        models.append(word)
    in_models = len(models) == len(rest_words)
    if in_models and not fragment.startswith("-") and (fragment or len(models) < 2):
        return match([m for m in model_ids() if m not in models])
    if rest_words and rest_words[-1] in VALUE_OPTIONS:
        return []
    params: dict[str, list[str]] = {}
    for model in models:
        found = parameter_names(model)
        for name in found:
            choices = found[name] if isinstance(found, Mapping) else []
            params.setdefault(name, list(choices))
    last = rest_words[-1] if rest_words else ""
    if last.startswith("--") and params.get(last[2:]):
        return match(params[last[2:]])
    if fragment.startswith("-") or fragment == "":
        return match([*(f"--{n}" for n in params), *COMMAND_FLAGS["compare"], "--"])
    return []


def _choices(param: Any) -> list[str]:
    """The values a parameter accepts, for completion after ``--name``."""
    if param.data_type == "boolean":
        return ["true", "false"]
    return [str(o) for o in param.options]


class CompletionSource:
    """Model ids and parameter schemas for completion, from the core, refreshed after a minute.

    The magic feeds it what its commands fetch anyway (``remember_model``/``remember_ids``), so
    completing after ``%aix models`` or a run costs no request.
    """

    def __init__(self, page_size: Callable[[], int] = lambda: 100) -> None:
        self._page_size = page_size
        self._ids: tuple[float, list[str]] | None = None
        self._schemas: dict[str, tuple[float, dict[str, list[str]]]] = {}

    def known_ids(self) -> list[str]:
        """The ids seen so far (never asks the server)."""
        return list(self._ids[1]) if self._ids else []

    def remember_ids(self, ids: Iterable[str]) -> None:
        """Keep these model ids for completion (a command just listed them)."""
        self._ids = (time.monotonic(), list(ids))

    def remember_model(self, model: Any) -> None:
        """Keep this model's parameter names and their choices for completion."""
        self._schemas[model.id] = (time.monotonic(), {n: _choices(p) for n, p in model.model_params.items()})

    def model_ids(self) -> list[str]:
        """The model ids to complete, listed from the server when the cache is stale (errors: what is
        known)."""
        if self._ids is None or time.monotonic() - self._ids[0] > CACHE_SECONDS:
            from aix_jupyter.core.factory import ModelFactory

            try:
                found = ModelFactory.list(page_size=self._page_size())
            except AixError:
                return self.known_ids()  # completion offers what it knows; commands report errors
            self.remember_ids(m.id for m in found["items"])
        return self.known_ids()

    def parameters(self, model_id: str) -> dict[str, list[str]]:
        """Parameter name -> value choices of ``model_id``, fetched when not cached (errors: none)."""
        cached = self._schemas.get(model_id)
        if cached is None or time.monotonic() - cached[0] > CACHE_SECONDS:
            from aix_jupyter.core.factory import ModelFactory

            try:
                self.remember_model(ModelFactory.get(model_id))
            except AixError:
                return {}
            cached = self._schemas[model_id]
        return cached[1]


def complete(context: Any, source: CompletionSource, default_model: str = "") -> dict[str, Any]:
    """An IPython matcher result for the line in ``context`` (``suppress`` others when we answer)."""
    line = context.text_until_cursor
    fragment, candidates = completions(
        line, model_ids=source.model_ids, parameter_names=source.parameters, default_model=default_model
    )
    if not candidates:
        return {"completions": [], "suppress": False}
    return {
        "completions": [SimpleCompletion(text=c, type="aix") for c in candidates],
        "matched_fragment": fragment,
        "suppress": True,
    }


def make_matcher(source: CompletionSource, default_model: Callable[[], str]) -> Callable[[Any], Any]:
    """A context matcher (IPython >= 8.6) for ``ip.Completer.custom_matchers``."""

    @context_matcher()
    def aix_matcher(context: Any) -> Any:
        return complete(context, source, default_model())

    return aix_matcher
