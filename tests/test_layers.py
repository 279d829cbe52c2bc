"""The package's arrows all point down, read from the source tree (every import, even function-local
or under TYPE_CHECKING, and every module named in a string passed to ``importlib``/``__import__``):

    core    ↛ Jupyter (IPython, ipykernel, ipywidgets, traitlets, jupyter_*), ↛ backend, ↛ notebook layer
    backend ↛ Jupyter, ↛ notebook layer
    display, progress, frontend (the notebook layer without ipywidgets) ↛ widgets, ↛ ipywidgets
    inside the core: no circle; what is below the I/O drivers ↛ httpx, ↛ them, ↛ what sits on them

and the core works without the backend: a process in which the backend cannot be imported still runs
a model against a wire server, and without any server says so in one line.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "aix_jupyter"
JUPYTER = (
    "IPython",
    "ipykernel",
    "ipywidgets",
    "anywidget",
    "traitlets",
    "jupyter_client",
    "jupyter_core",
    "nbformat",
)
NOTEBOOK_LAYER = (
    "aix_jupyter.magics",
    "aix_jupyter.widgets",
    "aix_jupyter.display",
    "aix_jupyter.progress",
    "aix_jupyter.frontend",
)
DYNAMIC = {"import_module", "__import__"}  # (find_spec only looks: it imports nothing)


def _modules_named(path: Path) -> set[str]:
    """Every module ``path`` imports, statically or through importlib with a literal name."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the file's package
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # ``from pkg import module``
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in DYNAMIC and node.args and isinstance(node.args[0], ast.Constant):
                found.add(str(node.args[0].value))
    return found


def _strings(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def _hits(folder: str | list[str], forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    files = (
        [PACKAGE / f for f in folder]
        if isinstance(folder, list)
        else sorted((PACKAGE / folder).rglob("*.py"))
    )
    assert files and all(f.exists() for f in files), files
    out: dict[str, list[str]] = {}
    for path in files:
        bad = sorted(
            m for m in _modules_named(path) if any(m == f or m.startswith(f + ".") for f in forbidden)
        )
        if bad:
            out[str(path.relative_to(PACKAGE))] = bad
    return out


def test_the_scan_sees_every_kind_of_import():
    """The checker itself: it must find what the rules forbid, however it is written."""
    probe = PACKAGE / "core" / "_layer_probe.py"
    probe.write_text(
        "import IPython.display\n"
        "from aix_jupyter import backend\n"
        "def f():\n"
        "    import importlib\n"
        "    importlib.import_module('aix_jupyter.backend.embedded')\n"
        "    from ..widgets import form\n",
        encoding="utf-8",
    )
    try:
        found = _modules_named(probe)
    finally:
        probe.unlink()
    assert {"IPython.display", "aix_jupyter.backend", "aix_jupyter.backend.embedded"} <= found
    assert "aix_jupyter.widgets.form" in found


def test_core_imports_no_jupyter_no_backend_no_notebook_layer():
    forbidden = (*JUPYTER, "aix_jupyter.backend", *NOTEBOOK_LAYER)
    assert _hits("core", forbidden) == {}
    # nor the package's top level (which imports everything): the core sits below it
    for path in sorted((PACKAGE / "core").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        tops = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module == "aix_jupyter"]
        assert tops == [], path


def test_core_does_not_name_the_backend_even_in_a_string():
    for path in sorted((PACKAGE / "core").rglob("*.py")):
        named = [s for s in _strings(path) if "aix_jupyter.backend" in s or "backend.embedded" in s]
        assert named == [], f"{path.relative_to(PACKAGE)} names the backend: {named}"


def test_backend_imports_no_jupyter_and_no_notebook_layer():
    assert _hits("backend", (*JUPYTER, *NOTEBOOK_LAYER)) == {}


def test_display_and_progress_do_not_import_widgets():
    files = ["display.py", "progress.py", "frontend.py"]
    assert _hits(files, ("aix_jupyter.widgets", "ipywidgets")) == {}


def test_widgets_do_not_import_the_magics():
    """Widgets and the magic are siblings: what both need lives in display (e.g. metadata as text)."""
    assert _hits("widgets", ("aix_jupyter.magics",)) == {}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph(folder: str) -> dict[str, set[str]]:
    """Module -> the modules of the same folder it imports (any way ``_modules_named`` sees)."""
    files = {_module_name(p): p for p in sorted((PACKAGE / folder).rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        edges = set()
        for imported in _modules_named(path):
            # ``from pkg import mod, Name`` names pkg.mod and pkg.Name: the longest module prefix counts
            parts = imported.split(".")
            for end in range(len(parts), 0, -1):
                if ".".join(parts[:end]) in files:
                    edges.add(".".join(parts[:end]))
                    break
        edges.discard(name)
        graph[name] = edges
    return graph


def _cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """One circle of each strongly connected group of modules (Tarjan), as ``[a, b, ..., a]``."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_circle_in(graph, group) for group in groups]


def _circle_in(graph: Mapping[str, set[str]], group: set[str]) -> list[str]:
    """A shortest circle through the first module of ``group`` (breadth first, inside the group)."""
    start = min(group)
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in sorted(graph[node] & group):
            if nxt == start:
                return [*paths[node], start]
            if nxt not in paths:
                paths[nxt] = [*paths[node], nxt]
                queue.append(nxt)
    raise AssertionError(f"no circle in {group}")


def _named(cycles: list[list[str]]) -> list[str]:
    return [" -> ".join(m.removeprefix("aix_jupyter.") for m in cycle) for cycle in cycles]


def test_the_core_has_no_import_circle():
    """Every arrow between the core's modules points one way: a new circle fails, named."""
    graph = _import_graph("core")
    assert len(graph) > 20 and "aix_jupyter.core.flows" in graph["aix_jupyter.core.model"]
    assert _named(_cycles(graph)) == []


def test_the_circle_check_sees_a_circle_however_it_is_imported():
    """The checker itself: circles through function-local and TYPE_CHECKING imports are named."""
    probes = {
        "_circle_probe_a": "def f():\n    from aix_jupyter.core import _circle_probe_b\n",
        "_circle_probe_b": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
        "    from aix_jupyter.core._circle_probe_c import X\n",
        "_circle_probe_c": "from ._circle_probe_a import f\n",
    }
    for name, text in probes.items():
        (PACKAGE / "core" / f"{name}.py").write_text(text, encoding="utf-8")
    try:
        found = _named(_cycles(_import_graph("core")))
    finally:
        for name in probes:
            (PACKAGE / "core" / f"{name}.py").unlink()
    assert found == [
        "core._circle_probe_a -> core._circle_probe_b -> core._circle_probe_c -> core._circle_probe_a"
    ]
    assert _named(_cycles({"a": {"b"}, "b": {"c", "d"}, "c": {"a"}, "d": set()})) == ["a -> b -> c -> a"]


# The core's layers (README.md's Development layout): the pieces below the I/O drivers know neither
# httpx nor the drivers (transport, sync_transport, async_transport) nor what sits on them.
BELOW_THE_DRIVERS = (
    "wire",
    "protocol",
    "polling",
    "flows",
    "retries",
    "streaming",
    "events",
    "marks",
    "workers",
    "batch_schedule",
    "batch_result",
    "mediatypes",
    "structured",
)
DRIVERS_AND_ABOVE = ("transport", "sync_transport", "async_transport", "plans", "recall", "model", "factory")
DRIVERS_AND_ABOVE += ("batch", "compare", "media", "llm", "conversation")


def test_what_is_below_the_io_drivers_imports_none_of_them_nor_the_model():
    files = [f"core/{name}.py" for name in BELOW_THE_DRIVERS]
    forbidden = ("httpx", *(f"aix_jupyter.core.{name}" for name in DRIVERS_AND_ABOVE))
    assert _hits(files, forbidden) == {}


def test_batch_knows_the_model_only_by_a_protocol():
    files = ["core/batch.py", "core/batch_result.py", "core/batch_schedule.py"]
    forbidden = ("aix_jupyter.core.model", "aix_jupyter.core.factory", "aix_jupyter.core.compare")
    assert _hits(files, forbidden) == {}


CORE_ALONE = """
import sys
sys.modules["aix_jupyter.backend"] = None  # the backend cannot be imported in this process
import aix_jupyter
from aix_jupyter.core.errors import ConfigurationError
from aix_jupyter.core.model import Model
from tests.core.wireserver import WireServer
try:
    Model("echo").run("x")
except ConfigurationError as exc:
    print("ERROR", exc)
with WireServer() as server:
    print("RUN", Model("echo", url=server.run_url, api_key="k" * 8).run("hello").data)
assert not any(m.startswith("aix_jupyter.backend") for m in sys.modules if sys.modules[m] is not None)
"""


def test_the_core_runs_without_the_backend():
    config_vars = ("TEAM_API_KEY", "AIXPLAIN_API_KEY", "MODELS_RUN_URL", "BACKEND_URL", "AIX_BACKEND_URL")
    env = {k: v for k, v in os.environ.items() if k not in config_vars}
    env["PYTHONPATH"] = str(PACKAGE.parent)
    proc = subprocess.run(
        [sys.executable, "-c", CORE_ALONE],
        capture_output=True,
        text=True,
        env=env,
        cwd=PACKAGE.parent,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(
        "ERROR no API key or URL is configured and the embedded backend is unavailable"
    )
    assert lines[0].endswith("set TEAM_API_KEY, or AIX_BACKEND_URL to an aiXplain-wire server")
    assert lines[1] == "RUN echo: hello"
