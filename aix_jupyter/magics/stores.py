"""``%aix cache``, ``%aix record`` and ``%aix replay``: the response cache and cassettes (``core.recall``).

Imported on first use of one of these subcommands, not at ``%load_ext``: ``args.parse_command`` hands
their words to ``parse``, the magic hands the parsed command to ``handle``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from aix_jupyter.core import recall
from aix_jupyter.core.cache import DEFAULT_MAX_BYTES, FILE_NAME, size_text
from aix_jupyter.core.errors import AixError
from aix_jupyter.display import Table
from aix_jupyter.magics.args import (
    _NUMBER,
    CACHE_ACTIONS,
    COMMAND_FLAGS,
    Token,
    _option_value,
    _split_eq,
    usage,
)
from aix_jupyter.magics.errors import MagicUsageError
from aix_jupyter.progress import plural

if TYPE_CHECKING:
    from aix_jupyter.core.cache import ResponseCache
    from aix_jupyter.core.cassette import Cassette

PathOf = Callable[[str], str]  # a path of the magic's line as the magic reads it ({name}, ~)

_SIZE = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?)(i?b?)$", re.I)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


@dataclass
class CacheArgs:
    """``cache [on [PATH] [--max-size SIZE] | off | clear | info]`` (nothing: ``info``)."""

    action: Literal["on", "off", "clear", "info"] = "info"
    path: str | None = None  # on: the cache file (None: the default file)
    max_bytes: int | None = None  # on: --max-size in bytes (None: the default, 1 GiB)
    command: ClassVar[str] = "cache"


@dataclass
class RecordArgs:
    """``record PATH [--append]`` / ``record off``."""

    path: str | None  # None: stop recording
    append: bool = False
    command: ClassVar[str] = "record"


@dataclass
class ReplayArgs:
    """``replay PATH [--speed X]`` / ``replay off``."""

    path: str | None  # None: stop replaying
    speed: float | None = None  # None: $AIX_REPLAY_SPEED, else 1 (the recorded pace)
    command: ClassVar[str] = "replay"


StoreArgs = CacheArgs | RecordArgs | ReplayArgs


TOPIC_DETAILS: dict[str, str] = {
    "cache": """\
The response cache keeps the final SUCCESS response of every run under its request key (model,
version, input, parameters, server) in one SQLite file shared by every kernel: running the same
request again is answered from it at once, at no cost.
  %aix cache on [PATH] [--max-size SIZE]   turn it on (PATH: a file or a folder; default
                                           $AIX_CACHE_DIR, $XDG_CACHE_HOME/aix_jupyter or
                                           ~/.cache/aix_jupyter); SIZE like 500MB, 2GB or bytes
                                           (KB/MB/GB count 1024s; default 1GB), least recently
                                           used entries go first
  %aix cache off                           runs go to the server again (the file is kept)
  %aix cache clear                         remove every entry of the cache file (the one in use,
                                           else the default file)
  %aix cache info  (or %aix cache)         the file, its entries and size, hits and credits saved
--no-cache on run, stream, async, map or compare bypasses the cache for that command.
An answer from the cache says "cached" in its status line; its output metadata has "cached".""",
    "record": """\
Every run (and stream, job, batch item) and every model lookup is appended to PATH, a cassette
of JSON lines (no API key is ever written), so that %aix replay PATH answers the same cells later
with no network and no key (CI, a talk, a notebook shared without a key).
  %aix record PATH            start a new cassette (an existing file is replaced)
  %aix record PATH --append   add to an existing cassette
  %aix record off             stop recording""",
    "replay": """\
Every run is answered from the cassette PATH (written by %aix record): nothing goes to a server
and no key is needed. A run the cassette does not hold raises ReplayMiss, naming it.
  %aix replay PATH [--speed X]   start (X scales the pauses between a stream's chunks: 1 as
                                 recorded, 2 twice as fast, 0 no pauses; default
                                 $AIX_REPLAY_SPEED, else 1)
  %aix replay off                runs go to the server again""",
}


def parse_size(value: str, option: str = "--max-size") -> int:
    """Bytes of a size such as ``500MB``, ``2GB``, ``1.5GiB``, ``64k`` or ``1048576`` (K, M, G and T
    count 1024s, with or without ``B``/``iB``)."""
    match = _SIZE.match(value.strip())
    if match is None or (match.group(3).lower().startswith("i") and not match.group(2)):
        raise MagicUsageError(f"{option} needs a size such as 500MB, 2GB or a number of bytes, got {value!r}")
    number = float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]
    if number < 1:
        raise MagicUsageError(f"{option} must be at least 1 byte, got {value!r}")
    return int(number)


def _options_and_words(
    command: str, args: list[Token], takes_value: tuple[str, ...]
) -> tuple[dict[str, str | None], list[Token]]:
    """The options (``--name``, ``--name VALUE``, ``--name=VALUE``) and the other words of a
    settings command; an unknown option or one given twice is an error."""
    options: dict[str, str | None] = {}
    words: list[Token] = []
    i = 0
    while i < len(args):
        tok = args[i]
        name, inline = _split_eq(tok)
        if name.startswith("-") and len(name) > 1 and not tok.quoted and not _NUMBER.match(name):
            if name not in COMMAND_FLAGS[command]:
                valid = ", ".join(COMMAND_FLAGS[command]) or "none"
                raise MagicUsageError(f"{command}: unknown option {name}; valid options: {valid}")
            if name in options:
                raise MagicUsageError(f"{command}: option {name} given twice; give it once")
            if name in takes_value:
                value = inline if inline is not None else _option_value(args, i, name, command)
                i += 0 if inline is not None else 1
                options[name] = value
            elif inline is not None:
                raise MagicUsageError(f"{command}: option {name} takes no value, got {tok.value!r}")
            else:
                options[name] = None
        else:
            words.append(tok)
        i += 1
    return options, words


def _is_off(words: list[Token]) -> bool:
    """``off`` as the only word (unquoted: ``'off'`` is a file named off)."""
    return len(words) == 1 and words[0].value == "off" and not words[0].quoted


def _parse_cache(args: list[Token]) -> CacheArgs:
    options, words = _options_and_words("cache", args, ("--max-size",))
    action = words[0].value if words else "info"
    if action not in CACHE_ACTIONS or (words and words[0].quoted):
        raise MagicUsageError(
            f"cache: unknown action {action!r}; use on, off, clear or info; {usage('cache')}"
        )
    rest = [t.value for t in words[1:]]
    if action != "on":
        if rest or options:
            extra = rest[0] if rest else next(iter(options))
            raise MagicUsageError(f"cache {action} takes no arguments, got {extra!r}; {usage('cache')}")
        return CacheArgs(action)  # type: ignore[arg-type]
    if len(rest) > 1:
        raise MagicUsageError(f"cache on takes one PATH, got also {rest[1]!r}; quote a path with spaces")
    size = options.get("--max-size")
    return CacheArgs("on", rest[0] if rest else None, None if size is None else parse_size(size))


def _cassette_words(
    command: str, args: list[Token], takes_value: tuple[str, ...]
) -> tuple[dict[str, str | None], str | None]:
    """The options and the cassette's PATH of ``record`` / ``replay`` (None for ``off``)."""
    options, words = _options_and_words(command, args, takes_value)
    if not words:
        raise MagicUsageError(f"{command}: give the cassette's PATH (a .jsonl file) or off; {usage(command)}")
    if len(words) > 1:
        raise MagicUsageError(
            f"{command} takes one PATH, got also {words[1].value!r}; quote a path with spaces"
        )
    if _is_off(words):
        if options:
            raise MagicUsageError(f"{command} off takes no options, got {next(iter(options))}")
        return options, None
    return options, words[0].value


def _parse_record(args: list[Token]) -> RecordArgs:
    options, path = _cassette_words("record", args, ())
    return RecordArgs(path, append=path is not None and "--append" in options)


def _parse_replay(args: list[Token]) -> ReplayArgs:
    options, path = _cassette_words("replay", args, ("--speed",))
    if path is None:
        return ReplayArgs(None)
    raw = options.get("--speed")
    speed: float | None = None
    if raw is not None:
        try:
            speed = float(raw)
        except ValueError:
            raise MagicUsageError(f"--speed needs a number >= 0 (0: no pauses), got {raw!r}") from None
        if not speed >= 0 or speed == float("inf"):
            raise MagicUsageError(f"--speed must be a number >= 0 (0: no pauses), got {raw!r}")
    return ReplayArgs(path, speed)


def parse(command: str, args: list[Token]) -> StoreArgs:
    """The parsed ``cache`` / ``record`` / ``replay`` command."""
    if command == "cache":
        return _parse_cache(args)
    if command == "record":
        return _parse_record(args)
    return _parse_replay(args)


def handle(args: StoreArgs, path_of: PathOf) -> Table | None:
    """Carry out a parsed command (``path_of`` reads a path of the line); a table for ``cache info``."""
    if isinstance(args, CacheArgs):
        return _cache(args, path_of)
    if isinstance(args, RecordArgs):
        _record(args, path_of)
    else:
        _replay(args, path_of)
    return None


def _cache(args: CacheArgs, path_of: PathOf) -> Table | None:
    if args.action == "on":
        cache = recall.open_cache(_cache_file(path_of(args.path)) if args.path else None)
        cache.max_bytes = args.max_bytes or DEFAULT_MAX_BYTES
        recall.set_cache(cache)
        entries = cache.info().entries
        bound = size_text(cache.max_bytes)
        print(f"response cache on: {shown(cache.path)} ({_entries(entries)}, at most {bound})")
        return None
    if args.action == "off":
        previous = _current(recall.current_cache)
        recall.set_cache(None)
        kept = (
            f" ({shown(previous.path)} is kept: %aix cache on uses it again)" if previous is not None else ""
        )
        print(f"response cache off{kept}")
        return None
    cache = _current(recall.current_cache)
    is_on = cache is not None
    if cache is None:  # off: the default file (which the next %aix cache on would use)
        cache = recall.open_cache()
    if args.action == "clear":
        removed = cache.clear()
        print(f"response cache cleared: {_entries(removed)} removed from {shown(cache.path)}")
        return None
    return cache_table(cache, is_on)


def _off(
    current: Callable[[], Any], turn: Callable[[None], Any], idle: str, said: Callable[[Any], str]
) -> None:
    """Turn a recording or a replay off (``turn(None)``) and say what it was (``idle``: nothing)."""
    previous = _current(current)
    turn(None)
    print(idle if previous is None else said(previous))


def _record(args: RecordArgs, path_of: PathOf) -> None:
    if args.path is None:
        return _off(
            recall.current_record,
            recall.set_record,
            "recording off (nothing was being recorded)",
            lambda was: f"recording off: {shown(was.path)} ({plural(was.recorded, 'line')} written)",
        )
    path = path_of(args.path)
    paused = _current(recall.current_replay)
    cassette = recall.set_record(path, append=args.append)
    assert cassette is not None
    how = "appending to the cassette" if args.append else "a new cassette"
    note = f"; nothing is recorded while {shown(paused.path)} is replayed" if paused is not None else ""
    print(f"recording every run to {shown(cassette.path)} ({how}){note}")
    return None


def _replay(args: ReplayArgs, path_of: PathOf) -> None:
    if args.path is None:
        return _off(
            recall.current_replay,
            recall.set_replay,
            "replay off (nothing was being replayed)",
            lambda was: (
                f"replay off: runs go to the server again ({shown(was.path)} gave "
                f"{plural(was.replayed, 'answer')})"
            ),
        )
    cassette = recall.set_replay(path_of(args.path), speed=args.speed)
    assert cassette is not None
    pace = "streams with no pauses" if cassette.speed == 0 else f"streams at speed {cassette.speed:g}"
    print(
        f"replaying {shown(cassette.path)}: {plural(len(cassette.runs), 'run')} recorded, {pace}; "
        "nothing goes to a server"
    )
    return None


def shown(path: str | os.PathLike[str]) -> str:
    """A path as the magic prints it: relative to the working folder when inside it (a notebook's own
    files read the same on every machine), else as it is."""
    text = os.fspath(path)
    try:
        relative = os.path.relpath(text)
    except ValueError:  # another drive
        return text
    return relative if not relative.startswith(os.pardir) else text


def _cache_file(path: str) -> str:
    """A cache path of ``%aix cache on PATH``: a folder (existing, or written with a trailing slash)
    holds the cache's usual file name."""
    if os.path.isdir(path) or path.endswith(("/", os.sep)):
        return os.path.join(path, FILE_NAME)
    return path


def _current(getter: Any) -> Any:
    """What ``recall.current_cache/record/replay`` gives, or None when the environment names one that
    cannot be opened (the error is for the runs that use it, not for turning it off)."""
    try:
        return getter()
    except AixError:
        return None


def _entries(count: int) -> str:
    return f"{count:,} {'entry' if count == 1 else 'entries'}"


def stores_state() -> dict[str, str]:
    """The response cache, the cassette recorded and the cassette replayed, for ``%aix config``."""
    state: dict[str, str] = {}
    try:
        cache: ResponseCache | None = recall.current_cache()
        state["cache"] = (
            "off" if cache is None else f"{shown(cache.path)} (at most {size_text(cache.max_bytes)})"
        )
    except AixError as exc:
        state["cache"] = f"unusable: {exc}"
    for name, getter in (("record", recall.current_record), ("replay", recall.current_replay)):
        try:
            cassette: Cassette | None = getter()
        except AixError as exc:
            state[name] = f"unusable: {exc}"
            continue
        if cassette is None:
            state[name] = "off"
        elif name == "replay":
            state[name] = (
                f"{shown(cassette.path)} ({plural(len(cassette.runs), 'run')}, speed {cassette.speed:g})"
            )
        else:
            state[name] = shown(cassette.path)
    return state


def cache_table(cache: ResponseCache, is_on: bool = True) -> Table:
    """``%aix cache info``: the cache file, its entries and size, and what it saved (``CacheInfo.rows``)."""
    info = cache.info()
    status = "on" if is_on else "off (%aix cache on turns it on, with this file)"
    rows = [[label, shown(value) if label == "file" else value] for label, value in info.rows()]
    table = Table(["cache", "value"], [["status", status], *rows])
    table.info = info  # type: ignore[attr-defined]
    return table
