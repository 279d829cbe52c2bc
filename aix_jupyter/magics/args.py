"""Typed arguments of the ``%aix`` / ``%%aix`` magics, parsed from the magic's line.

Grammar (``[...]`` optional)::

    %aix run    [MODEL] [OPTIONS] [--] [TEXT]      %%aix run [MODEL] [OPTIONS]   (input = cell body)
    %aix stream [MODEL] [OPTIONS] [--] [TEXT]      (= run --stream)
    %aix chat   [MODEL] [--system T] [--session S] [OPTIONS] [TEXT]   one conversation per (model, session)
    %aix chat   [MODEL] --reset | --history        %aix chat [MODEL] alone: a ChatWidget on it
    %aix async  [MODEL] [OPTIONS] [--] [TEXT]      returns at once with a handle (poll URL)
    %aix poll   URL_OR_VAR [--wait] [-o VAR] [--timeout S]
    %aix cancel URL_OR_VAR
    %aix models [QUERY] [--function F] [--source-language L] [--target-language L] [--sort KEY]
    %aix browse [QUERY] [same options]            a searchable model browser (ModelBrowser)
    %aix info   [MODEL]
    %aix widget [MODEL]
    %aix map    [MODEL] [OPTIONS] SOURCE           SOURCE: a variable holding a list, Series or DataFrame
    %aix compare MODEL MODEL [MODEL ...] [OPTIONS] -- TEXT     %%aix compare MODEL MODEL ... (cell body)
                                                   (every word before the first option or -- is a MODEL)
    %aix usage                                     runs, items, failures, credits of this kernel
    %aix cache  [on [PATH] [--max-size SIZE] | off | clear | info]   the response cache (alone: info)
    %aix record PATH [--append] | off              record every run to a cassette (JSON lines)
    %aix replay PATH [--speed X] | off             answer every run from a cassette (no network, no key)
    %aix config | login | help [SUBCOMMAND]
    %aix MODEL ...                                 (a model id first means ``run``)

Run options: ``--NAME VALUE`` / ``--NAME=VALUE`` for each parameter of the model's schema (the
only description of a model's inputs), ``-p/--param NAME=VALUE`` for a parameter whose name is
one of the magic's own options, ``-o/--out VAR``, ``--stream``, ``--timeout SECONDS``,
``--no-progress``, ``--no-cache``, ``--help``; run, stream and chat also ``-f/--format
text|markdown|json|html|code`` and ``--schema VAR``. The input is the raw rest of the line (one quoted
string is unquoted), or the cell body; ``{name}`` is replaced from the user namespace (``{{``/``}}`` give
braces); a name holding a dict is sent as the request itself; a path to an existing file sends the
file (its text for text models).

Input handling lives in :mod:`aix_jupyter.magics.inputs`, completion in
:mod:`aix_jupyter.magics.complete`, the errors in :mod:`aix_jupyter.magics.errors`.
This module is stdlib-only.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from aix_jupyter.core.errors import ParameterError
from aix_jupyter.magics.errors import MagicUsageError

SUBCOMMANDS: tuple[str, ...] = (
    "run",
    "stream",
    "chat",
    "async",
    "poll",
    "cancel",
    "models",
    "browse",
    "info",
    "widget",
    "map",
    "compare",
    "usage",
    "cache",
    "record",
    "replay",
    "config",
    "login",
    "help",
)
RUN_COMMANDS = ("run", "stream", "async")
CHAT_COMMANDS = ("chat",)  # parsed like a run; handled by ``chat`` (imported on first use)
BATCH_COMMANDS = ("map", "compare")
RUN_FLAGS: dict[str, str] = {  # the magic's own options of run/stream/async -> their help
    "-o": "VAR: store the ModelResponse in VAR",
    "--out": "VAR: store the ModelResponse in VAR",
    "-p": "NAME=VALUE: set a model parameter (for names the magic itself uses)",
    "--param": "NAME=VALUE: set a model parameter (for names the magic itself uses)",
    "--stream": "show the output as it is generated",
    "--timeout": "SECONDS: give up (and cancel) after this long",
    "--no-progress": "do not show the progress while waiting",
    "--no-cache": "bypass the response cache (%aix cache) for this command",
    "--help": "show the model's parameters",
    "--concurrency": "N: at most N jobs in flight at once (default 8)",
    "--column": "COL: the DataFrame column holding the inputs",
    "--into": "COL: write the outputs into this new column of the DataFrame",
    "-f": "FORMAT: show the answer as text, markdown, json, html or code (code: a new cell below)",
    "--format": "FORMAT: show the answer as text, markdown, json, html or code (code: a new cell below)",
    "--schema": "VAR: a pydantic class or JSON-schema dict: structured output, shown parsed",
    "--system": "TEXT: the conversation's system prompt",
    "--session": "NAME: which conversation with this model (default: 'default')",
    "--reset": "forget the conversation's turns",
    "--history": "show the conversation's transcript",
}
FORMAT_FLAGS = ("-f", "--format", "--schema")  # run, stream and chat
CHAT_FLAGS = ("--system", "--session", "--reset", "--history")  # chat only
_RUN_ONLY = tuple(f for f in RUN_FLAGS if f not in ("--concurrency", "--column", "--into", *CHAT_FLAGS))
_BATCH_FLAGS = ("-o", "--out", "-p", "--param", "--concurrency", "--timeout", "--no-progress", "--no-cache")
COMMAND_FLAGS: dict[str, tuple[str, ...]] = {
    "run": _RUN_ONLY,
    "stream": tuple(f for f in _RUN_ONLY if f != "--stream"),
    "async": tuple(
        f for f in _RUN_ONLY if f not in ("--stream", "--timeout", "--no-progress", *FORMAT_FLAGS)
    ),
    "chat": (*(f for f in _RUN_ONLY if f != "--stream"), *CHAT_FLAGS),
    "poll": ("--wait", "-o", "--out", "--timeout", "--no-progress"),
    "map": (*_BATCH_FLAGS, "--column", "--into"),
    "compare": _BATCH_FLAGS,
    "usage": (),
    "cache": ("--max-size",),
    "record": ("--append",),
    "replay": ("--speed",),
    "cancel": (),
    "models": ("--function", "--source-language", "--target-language", "--sort"),
    "browse": ("--function", "--source-language", "--target-language", "--sort"),
    "info": (),
    "widget": (),
    "config": (),
    "login": (),
    "help": (),
}
_HEX_ID = re.compile(r"^[0-9a-f]{24}$", re.I)
IDENTIFIER = re.compile(r"^[A-Za-z_]\w*$")
_NUMBER = re.compile(r"^-\d|^-\.\d")
CACHE_ACTIONS: tuple[str, ...] = ("on", "off", "clear", "info")
STORE_COMMANDS: tuple[str, ...] = ("cache", "record", "replay")  # parsed and run by ``stores``


# ---------------------------------------------------------------------------------------------
# the schema as the parser needs it (core.parameters.Parameter / ModelParameters fit)
# ---------------------------------------------------------------------------------------------
class ParameterLike(Protocol):
    """What the parser needs of a parameter (``core.parameters.Parameter`` fits)."""

    name: str
    data_type: str
    multiple_values: bool

    def check(self, value: Any) -> Any:
        """The value in the parameter's type; raises ParameterError when it does not fit."""

    def help(self) -> str:
        """One line describing the parameter (name, type, default, options)."""


Schema = Mapping[str, Any]  # name -> ParameterLike


# ---------------------------------------------------------------------------------------------
# tokens
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Token:
    """A word of the magic's line and where it is (``start``/``end`` offsets; ``quoted`` if it was)."""

    value: str
    start: int
    end: int
    quoted: bool = False


def next_token(line: str, pos: int) -> Token | None:
    """The shell-like token starting at or after ``pos`` (quotes group words), or None at the end."""
    n = len(line)
    while pos < n and line[pos].isspace():
        pos += 1
    if pos >= n:
        return None
    start, buf, quoted = pos, [], False
    while pos < n and not line[pos].isspace():
        char = line[pos]
        if char in "'\"":
            quote, quoted = char, True
            pos += 1
            while pos < n and line[pos] != quote:
                if quote == '"' and line[pos] == "\\" and pos + 1 < n and line[pos + 1] in '"\\':
                    pos += 1
                buf.append(line[pos])
                pos += 1
            if pos >= n:
                raise MagicUsageError(f"unclosed {quote} in {line[start:].strip()!r}; close the quote")
            pos += 1
        else:
            buf.append(char)
            pos += 1
    return Token("".join(buf), start, pos, quoted)


def tokens(line: str) -> list[Token]:
    """All the shell-like tokens of ``line``."""
    out: list[Token] = []
    pos = 0
    while (tok := next_token(line, pos)) is not None:
        out.append(tok)
        pos = tok.end
    return out


def _is_option(line: str, pos: int) -> bool:
    """Does the text at ``pos`` start an option (``-x`` / ``--name``, not ``-5`` or a lone ``-``)?"""
    rest = line[pos:]
    return rest.startswith("-") and len(rest) > 1 and not rest[1].isspace() and not _NUMBER.match(rest)


def _skip_space(line: str, pos: int) -> int:
    while pos < len(line) and line[pos].isspace():
        pos += 1
    return pos


def raw_rest(line: str, pos: int) -> str:
    """The rest of the line from ``pos``; one fully quoted string is unquoted."""
    rest = line[pos:].strip()
    if rest[:1] in ("'", '"'):
        try:
            tok = next_token(rest, 0)
        except MagicUsageError:
            return rest
        if tok is not None and tok.end == len(rest):
            return tok.value
    return rest


def looks_like_model_id(text: str, known: Iterable[str] = ()) -> bool:
    """True when ``text`` can be a model id (known, ``provider/name``, or a 24-digit hex id), not a
    subcommand."""
    return "/" in text or bool(_HEX_ID.match(text)) or text in set(known)


# ---------------------------------------------------------------------------------------------
# typed arguments
# ---------------------------------------------------------------------------------------------
@dataclass
class RunArgs:
    """``run``/``stream``/``async``/``chat``: the model and the unparsed rest of the line."""

    command: Literal["run", "stream", "async", "chat"]
    model_id: str
    rest: str  # option tokens and input, parsed against the model's schema by parse_run_options
    rest_offset: int = 0


@dataclass
class RunOptions:
    """A run's options, parsed against the model's schema by ``parse_run_options``."""

    parameters: dict[str, Any] = field(default_factory=dict)
    raw_parameters: dict[str, Any] = field(default_factory=dict)
    out: str | None = None
    stream: bool = False
    timeout: float | None = None
    progress: bool = True
    help: bool = False
    no_cache: bool = False  # --no-cache: the core call gets ``cache=False``
    input_text: str | None = None  # raw: before interpolation
    concurrency: int | None = None  # map / compare
    column: str | None = None  # map: the DataFrame's input column
    into: str | None = None  # map: the DataFrame column the outputs go to
    output_format: str | None = None  # -f/--format: text, markdown, json, html or code
    schema: str | None = None  # --schema VAR: the variable holding the response format
    system: str | None = None  # chat --system TEXT
    session: str | None = None  # chat --session NAME
    reset: bool = False  # chat --reset
    history: bool = False  # chat --history


@dataclass
class BatchArgs:
    """``map`` (one model) / ``compare`` (two or more): the models and the unparsed rest of the line."""

    command: Literal["map", "compare"]
    model_ids: list[str]
    rest: str  # options and SOURCE / TEXT, parsed against the schema(s) by parse_run_options


@dataclass
class PollArgs:
    """``poll URL_OR_VAR [--wait] [-o VAR] [--timeout S] [--no-progress]``."""

    target: str
    wait: bool = False
    out: str | None = None
    timeout: float | None = None
    progress: bool = True


@dataclass
class TargetArgs:  # cancel
    """``cancel URL_OR_VAR``."""

    target: str


@dataclass
class ModelsArgs:
    """``models [QUERY] [--function F] [--source-language L] [--target-language L] [--sort KEY]``."""

    query: str = ""
    function: str | None = None
    source_language: str | None = None
    target_language: str | None = None
    sort: str | None = None  # a sort word: name, -name, created, ... (core.enums.SORT_WORDS)

    def list_arguments(self) -> dict[str, Any]:
        """The ``ModelFactory.list`` / ``ModelBrowser`` keyword arguments of these options."""
        from aix_jupyter.core.enums import sort_of_word

        kwargs: dict[str, Any] = {
            "source_languages": self.source_language,
            "target_languages": self.target_language,
        }
        if self.sort:
            kwargs["sort_by"], kwargs["sort_order"] = sort_of_word(self.sort)
        return kwargs


@dataclass
class BrowseArgs(ModelsArgs):
    """``browse [QUERY] [same options as models]``."""


@dataclass
class ModelArgs:  # info, widget
    """``info [MODEL]`` and ``widget [MODEL]``."""

    command: Literal["info", "widget"]
    model_id: str


@dataclass
class SimpleArgs:  # config, login, help
    """``config``, ``login`` and ``help [SUBCOMMAND]``."""

    command: Literal["config", "login", "usage", "help"]
    topic: str = ""


if TYPE_CHECKING:  # (the cache / record / replay commands live in ``stores``, imported on first use)
    from typing import TypeAlias

    from aix_jupyter.magics.stores import StoreArgs

    Command: TypeAlias = (
        RunArgs
        | BatchArgs
        | PollArgs
        | TargetArgs
        | ModelsArgs
        | BrowseArgs
        | ModelArgs
        | SimpleArgs
        | StoreArgs
    )


def usage(command: str | None = None) -> str:
    """The magic's help text, or one subcommand's usage line."""
    lines = {
        "run": "%aix run MODEL [--param value ...] TEXT  |  %%aix run MODEL [--param value ...] + cell body",
        "stream": "%aix stream MODEL [--param value ...] TEXT   (chunks as they arrive)",
        "async": "%aix async MODEL [--param value ...] TEXT   (returns a handle: poll it later)",
        "chat": "%aix chat MODEL [--system TEXT] [--session NAME] [--param value ...] TEXT  |  "
        "%%aix chat MODEL ... + cell body  |  %aix chat MODEL --reset | --history  |  "
        "%aix chat MODEL   (a ChatWidget)",
        "poll": "%aix poll URL_OR_VAR [--wait] [-o VAR]",
        "cancel": "%aix cancel URL_OR_VAR",
        "models": "%aix models [QUERY] [--function F] [--source-language L] [--target-language L] "
        "[--sort name|-name|created|-created|price|-price|popular|-popular]   (L: a code such as en, "
        "en-US; --target-language with --function translation)",
        "browse": "%aix browse [QUERY] [same options as models]   (search, page, open a model's widget)",
        "info": "%aix info MODEL",
        "widget": "%aix widget MODEL",
        "map": "%aix map MODEL [--concurrency N] [--column COL] [--into COL] [-o VAR] [--param value ...] "
        "SOURCE   (SOURCE: a variable holding a list, Series or DataFrame)",
        "compare": "%aix compare MODEL MODEL [MODEL ...] [--param value ...] -- TEXT  |  "
        "%%aix compare MODEL MODEL ... [--param value ...] + cell body   (every word before the first "
        "option or -- is a model id)",
        "usage": "%aix usage   (runs, items, failures, answers from a store and credits of this kernel, "
        "per model)",
        "cache": "%aix cache [on [PATH] [--max-size SIZE] | off | clear | info]   (the response cache; "
        "alone: info)",
        "record": "%aix record PATH [--append]  |  %aix record off   (record every run to a cassette)",
        "replay": "%aix replay PATH [--speed X]  |  %aix replay off   (answer every run from a cassette)",
        "config": "%aix config   (where runs go; whether a key is set)",
        "login": "%aix login   (read an API key for this kernel only)",
        "help": "%aix help [SUBCOMMAND]",
    }
    if command in lines:
        return "usage: " + lines[command]
    head = "Run aiXplain-wire models; with nothing configured, the embedded offline backend."
    return "\n".join([head, "", *lines.values(), "", HELP_DETAILS])


def help_text(topic: str = "") -> str:
    """What ``%aix help [TOPIC]`` prints: the whole help, or a subcommand's usage and its details."""
    if not topic:
        return usage()
    if topic not in SUBCOMMANDS:
        return f"no subcommand {topic!r}; one of {', '.join(SUBCOMMANDS)}\n\n{usage()}"
    details = None
    if topic in STORE_COMMANDS:
        from aix_jupyter.magics.stores import TOPIC_DETAILS

        details = TOPIC_DETAILS.get(topic)
    if topic in CHAT_COMMANDS:
        from aix_jupyter.magics.chat import CHAT_DETAILS

        details = CHAT_DETAILS
    return usage(topic) + (f"\n\n{details}" if details else "")


HELP_DETAILS = """\
Run options: --NAME VALUE (or --NAME=VALUE) for each parameter of the model (%aix info MODEL lists
them), -p/--param NAME=VALUE, -o/--out VAR (store the ModelResponse), --stream, --timeout SECONDS,
--no-progress, --no-cache (bypass the response cache), --help. A model id in place of the subcommand
means run. run, stream and chat also take -f/--format text|markdown|json|html|code (code: the answer's
code goes into a new cell below) and --schema VAR (a pydantic class or a JSON-schema dict: the answer
is parsed into it and shown parsed).
Conversations: %aix chat MODEL TEXT remembers the turns (one conversation per model and --session);
%aix help chat.
Input: the rest of the line (after the options, or after --) or the cell body. {name} is filled in
from the notebook ({{ and }} give braces); a variable holding a dict is sent as the request; the path
of an existing file sends the file (its text for text models).
Batches (map, compare): --concurrency N (jobs in flight at once; for compare, across all the models),
--timeout SECONDS (the whole batch), -o VAR (the BatchResult / Comparison), --no-progress, --no-cache;
map also --column COL and --into COL.
compare: every word before the first option or -- is a model id (shout, my-model, provider/name).
Errors raise (Run All stops); Ctrl-C / interrupt cancels the run on the server.
Cache and cassettes: %aix help cache | record | replay ($AIX_CACHE, $AIX_RECORD, $AIX_REPLAY set them
for a whole kernel).
Settings: %config AixMagics.default_model / timeout / poll_interval / poll_cap / progress /
models_page_size; $AIX_FRONTEND=live|headless|terminal overrides the frontend guess."""


def parse_command(line: str, *, default_model: str = "", known_models: Iterable[str] = ()) -> Command:
    """Parse the subcommand and its fixed arguments; run options are parsed later with the schema."""
    first = next_token(line, 0)
    if first is None:
        if default_model:
            return RunArgs("run", default_model, "", len(line))
        raise MagicUsageError(
            "no subcommand; use one of " + ", ".join(SUBCOMMANDS) + " (or set AixMagics.default_model)"
        )
    word = first.value
    if word not in SUBCOMMANDS:
        if looks_like_model_id(word, known_models) and not word.startswith("-"):
            return RunArgs("run", word, line[first.end :], first.end)
        if default_model:  # ``%aix TEXT`` runs the default model
            return RunArgs("run", default_model, line[first.start :], first.start)
        raise MagicUsageError(
            f"unknown subcommand {word!r}; use one of {', '.join(SUBCOMMANDS)} "
            "(or a model id, or set AixMagics.default_model)"
        )
    pos = first.end
    if word in RUN_COMMANDS or word in CHAT_COMMANDS:
        tok = next_token(line, pos)
        if (
            tok is not None
            and not _is_option(line, tok.start)
            and (not default_model or looks_like_model_id(tok.value, known_models))
        ):
            return RunArgs(word, tok.value, line[tok.end :], tok.end)  # type: ignore[arg-type]
        if not default_model:
            raise MagicUsageError(f"{word}: give a MODEL id (see %aix models) or set AixMagics.default_model")
        return RunArgs(word, default_model, line[pos:], pos)  # type: ignore[arg-type]
    args = [t for t in tokens(line[pos:])]
    if word in ("poll", "cancel"):
        return _parse_target(word, args)
    if word in ("models", "browse"):
        return _parse_models(args, word)
    if word in ("info", "widget"):
        positional = [t.value for t in args]
        if len(positional) > 1:
            raise MagicUsageError(f"{word} takes one MODEL, got {len(positional)} words; {usage(word)}")
        if not positional and not default_model:
            raise MagicUsageError(f"{word}: give a MODEL id; {usage(word)}")
        return ModelArgs(word, positional[0] if positional else default_model)  # type: ignore[arg-type]
    if word in BATCH_COMMANDS:
        return _parse_batch(word, line, pos, default_model, known_models)
    if word in STORE_COMMANDS:
        from aix_jupyter.magics import stores

        return stores.parse(word, args)
    if word in ("config", "login", "usage"):
        if args:
            raise MagicUsageError(f"{word} takes no arguments, got {args[0].value!r}")
        return SimpleArgs(word)  # type: ignore[arg-type]
    return SimpleArgs("help", args[0].value if args else "")


def _parse_batch(
    command: str, line: str, pos: int, default_model: str, known_models: Iterable[str]
) -> BatchArgs:
    """``map [MODEL] rest`` / ``compare MODEL MODEL ... rest``: for compare, every word before the
    first option or ``--`` is a model id (whatever its shape: a custom server's ids are plain words)."""
    known = list(known_models)
    if command == "map":
        tok = next_token(line, pos)
        model_first = tok is not None and not _is_option(line, tok.start)
        if tok is not None and model_first and (not default_model or looks_like_model_id(tok.value, known)):
            return BatchArgs("map", [tok.value], line[tok.end :])
        if not default_model:
            raise MagicUsageError(f"map: give a MODEL id and a SOURCE variable; {usage('map')}")
        return BatchArgs("map", [default_model], line[pos:])
    models: list[str] = []
    while (tok := next_token(line, pos)) is not None and not _is_option(line, tok.start):
        models.append(tok.value)
        pos = tok.end
    if len(models) < 2:
        raise MagicUsageError(
            f"compare: give two or more MODEL ids before the options and --, got {len(models)}; "
            f"{usage('compare')}"
        )
    return BatchArgs("compare", models, line[pos:])


def _positive_int(value: str, option: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise MagicUsageError(f"{option} needs a whole number, got {value!r}") from None
    if number < 1:
        raise MagicUsageError(f"{option} must be at least 1, got {value!r}")
    return number


def _option_value(args: list[Token], i: int, name: str, command: str) -> str:
    if i + 1 >= len(args):
        raise MagicUsageError(f"{command}: option {name} needs a value; {usage(command)}")
    return args[i + 1].value


def _split_eq(tok: Token) -> tuple[str, str | None]:
    if tok.value.startswith("--") and "=" in tok.value:
        name, value = tok.value.split("=", 1)
        return name, value
    return tok.value, None


def _parse_target(command: str, args: list[Token]) -> PollArgs | TargetArgs:
    target: str | None = None
    poll = PollArgs(target="")
    i = 0
    while i < len(args):
        name, inline = _split_eq(args[i])
        if name.startswith("-") and len(name) > 1 and not args[i].quoted:
            if name not in COMMAND_FLAGS[command]:
                valid = ", ".join(COMMAND_FLAGS[command]) or "none"
                raise MagicUsageError(f"{command}: unknown option {name}; valid options: {valid}")
            if name == "--wait":
                poll.wait = True
            elif name == "--no-progress":
                poll.progress = False
            else:
                value = inline if inline is not None else _option_value(args, i, name, command)
                i += 0 if inline is not None else 1
                if name in ("-o", "--out"):
                    poll.out = _check_identifier(value, name)
                else:
                    poll.timeout = _positive_float(value, name)
        elif target is None:
            target = args[i].value
        else:
            raise MagicUsageError(f"{command} takes one URL or variable, got also {args[i].value!r}")
        i += 1
    if not target:
        raise MagicUsageError(
            f"{command}: give the poll URL or the variable holding the handle; {usage(command)}"
        )
    if command == "cancel":
        return TargetArgs(target)
    poll.target = target
    return poll


def _parse_models(args: list[Token], command: str = "models") -> ModelsArgs:
    result = BrowseArgs() if command == "browse" else ModelsArgs()
    options = {"--function": "function", "--source-language": "source_language"}
    options |= {"--target-language": "target_language", "--sort": "sort"}
    words: list[str] = []
    i = 0
    while i < len(args):
        name, inline = _split_eq(args[i])
        if name in options and not args[i].quoted:
            value = inline if inline is not None else _option_value(args, i, name, command)
            setattr(result, options[name], value)
            i += 0 if inline is not None else 1
        elif name.startswith("--") and not args[i].quoted:
            raise MagicUsageError(f"{command}: unknown option {name}; valid options: {', '.join(options)}")
        else:
            words.append(args[i].value)
        i += 1
    result.query = " ".join(words)
    _check_models_options(result, command)
    return result


def _check_models_options(result: ModelsArgs, command: str) -> None:
    from aix_jupyter.core.enums import Language, sort_of_word

    if result.sort is not None:
        try:
            sort_of_word(result.sort)
        except ParameterError as exc:
            raise MagicUsageError(f"{command}: --sort: {exc}") from None
    for option, code in (
        ("--source-language", result.source_language),
        ("--target-language", result.target_language),
    ):
        if code is not None:
            try:
                Language.parse(code)
            except ParameterError as exc:
                raise MagicUsageError(f"{command}: {option}: {exc}") from None
    if result.target_language is not None and (result.function or "").lower() != "translation":
        raise MagicUsageError(
            f"{command}: --target-language filters translation models; add --function translation"
        )


def _check_identifier(value: str, option: str) -> str:
    if not IDENTIFIER.match(value) or value in ("True", "False", "None"):
        raise MagicUsageError(f"{option} needs a Python variable name, got {value!r}")
    return value


def _output_format(value: str, option: str) -> str:
    from aix_jupyter.display import OUTPUT_FORMATS  # (only when -f is given: not at %load_ext)

    if value not in OUTPUT_FORMATS:
        raise MagicUsageError(f"{option} takes one of {', '.join(OUTPUT_FORMATS)}, got {value!r}")
    return value


def _positive_float(value: str, option: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise MagicUsageError(f"{option} needs a number of seconds, got {value!r}") from None
    if not number > 0:
        raise MagicUsageError(f"{option} must be > 0 seconds, got {value!r}")
    return number


# ---------------------------------------------------------------------------------------------
# run options, against the model's schema
# ---------------------------------------------------------------------------------------------
def valid_options_text(schema: Schema, command: str = "run") -> str:
    """The options a command accepts for this schema, for error messages (``--name``, ...)."""
    params = ", ".join(f"--{name}" for name in schema) or "none"
    own = [f for f in COMMAND_FLAGS[command] if f not in ("-o", "--out", "-p", "--param")]
    return f"model parameters: {params}; magic options: -o/--out, -p/--param, {', '.join(own)}"


def parse_run_options(
    rest: str,
    schema: Schema,
    *,
    command: str = "run",
    model_id: str = "",
    interpolate_value: Callable[[str], str] = lambda s: s,
) -> RunOptions:
    """Parse ``[OPTIONS] [--] [TEXT]`` of run/stream/async; model options are checked by the schema."""
    opts = RunOptions(stream=command == "stream")
    flags = COMMAND_FLAGS[command]
    pos = 0
    where = f" for {model_id}" if model_id else ""
    names = set(schema)  # iterate: a schema's ``in`` may raise for unknown names

    def take_value(tok: Token, name: str) -> tuple[str, int]:
        nxt = next_token(rest, tok.end)
        if nxt is None:
            raise ParameterError(f"option {name} needs a value; {usage(command)}", parameter=name.lstrip("-"))
        return nxt.value, nxt.end

    def add_param(name: str, raw: Any, option: str) -> None:
        if name not in names:
            raise ParameterError(
                f"unknown option {option}{where}; valid options: {valid_options_text(schema, command)}",
                parameter=name,
            )
        param = schema[name]
        value: Any = interpolate_value(raw) if isinstance(raw, str) else raw
        if isinstance(value, str) and param.data_type == "json":
            with contextlib.suppress(ValueError):
                value = json.loads(value)
        if name in opts.raw_parameters:
            if not param.multiple_values:
                raise ParameterError(f"option {option} given twice{where}; give it once", parameter=name)
            previous = opts.raw_parameters[name]
            value = [*previous, value] if isinstance(previous, list) else [previous, value]
        opts.raw_parameters[name] = value
        opts.parameters[name] = param.check(value)

    while True:
        pos = _skip_space(rest, pos)
        if pos >= len(rest):
            break
        if not _is_option(rest, pos):
            opts.input_text = raw_rest(rest, pos)
            break
        tok = next_token(rest, pos)
        assert tok is not None
        if tok.value == "--":
            opts.input_text = raw_rest(rest, tok.end) if rest[tok.end :].strip() else None
            break
        name, inline = _split_eq(tok)
        end = tok.end
        if name in flags and name not in ("-p", "--param"):
            if name in ("--stream", "--no-progress", "--no-cache", "--help", "--reset", "--history"):
                if inline is not None:
                    raise MagicUsageError(f"option {name} takes no value")
                opts.stream = opts.stream or name == "--stream"
                opts.progress = opts.progress and name != "--no-progress"
                opts.no_cache = opts.no_cache or name == "--no-cache"
                opts.help = opts.help or name == "--help"
                opts.reset = opts.reset or name == "--reset"
                opts.history = opts.history or name == "--history"
            else:
                value, end = (inline, tok.end) if inline is not None else take_value(tok, name)
                if name in ("-o", "--out"):
                    opts.out = _check_identifier(value, name)
                elif name == "--concurrency":
                    opts.concurrency = _positive_int(value, name)
                elif name == "--column":
                    opts.column = value
                elif name == "--into":
                    opts.into = value
                elif name in ("-f", "--format"):
                    opts.output_format = _output_format(value, name)
                elif name == "--schema":
                    opts.schema = _check_identifier(value, name)
                elif name == "--system":
                    opts.system = interpolate_value(value)
                elif name == "--session":
                    opts.session = value
                else:
                    opts.timeout = _positive_float(value, name)
        elif name in ("-p", "--param"):
            value, end = (inline, tok.end) if inline is not None else take_value(tok, name)
            if "=" not in value:
                raise MagicUsageError(f"{name} needs NAME=VALUE, got {value!r}")
            pname, pvalue = value.split("=", 1)
            add_param(pname.strip(), pvalue, f"-p {pname.strip()}")
        elif name.startswith("--") and len(name) > 2:
            pname = name[2:]
            param = schema[pname] if pname in names else None
            if param is not None and param.data_type == "boolean" and inline is None:
                nxt = next_token(rest, tok.end)
                if nxt is not None and nxt.value.lower() in (
                    "true",
                    "false",
                    "yes",
                    "no",
                    "on",
                    "off",
                    "1",
                    "0",
                ):
                    add_param(pname, nxt.value, name)
                    end = nxt.end
                else:
                    add_param(pname, True, name)
            else:
                value, end = (inline, tok.end) if inline is not None else take_value(tok, name)
                add_param(pname, value, name)
        else:
            raise ParameterError(
                f"unknown option {name}{where}; valid options: {valid_options_text(schema, command)}",
                parameter=name.lstrip("-"),
            )
        pos = end
    return opts
