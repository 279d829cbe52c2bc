"""``%load_ext aix_jupyter`` registers everything and imports nothing heavy (behaviour, not timing)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = (
    "httpx",
    "pydantic",
    "ipywidgets",
    "starlette",
    "uvicorn",
    "numpy",
    "aix_jupyter.core.model",
    "aix_jupyter.core.factory",
    "aix_jupyter.core.parameters",
    "aix_jupyter.backend",
    "aix_jupyter.widgets",
)

LAZY = ("aix_jupyter.display", "aix_jupyter.magics.inputs", "aix_jupyter.magics.complete", "getpass")

SCRIPT = """
import json, sys
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
ip.run_line_magic("load_ext", "aix_jupyter")
after_load = sorted(m for m in sys.modules)
ip.run_line_magic("aix", "help")
after_help = sorted(m for m in sys.modules)
print(json.dumps({
    "line": "aix" in ip.magics_manager.magics["line"],
    "cell": "aix" in ip.magics_manager.magics["cell"],
    "configurable": any(type(c).__name__ == "AixMagics" for c in ip.configurables),
    "after_load": after_load,
    "after_help": after_help,
}))
"""


def test_load_ext_imports_nothing_heavy():
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=60
    )
    state = json.loads(proc.stdout.strip().splitlines()[-1])
    assert state["line"] and state["cell"] and state["configurable"]
    for stage in ("after_load", "after_help"):
        loaded = set(state[stage])
        heavy = [m for m in HEAVY if m in loaded]
        assert heavy == [], f"{stage}: {heavy}"
    assert "aix_jupyter.magics" in state["after_load"]
    lazy = [m for m in LAZY if m in set(state["after_load"])]
    assert lazy == [], f"imported at load time although only commands need them: {lazy}"


def test_the_magics_package_keeps_its_entry_points():
    from aix_jupyter.magics import AixMagics, load_ipython_extension, unload_ipython_extension
    from aix_jupyter.magics.magic import AixMagics as Defined

    assert AixMagics is Defined and callable(load_ipython_extension) and callable(unload_ipython_extension)


def test_load_twice_and_unload(ip):
    ip.run_line_magic("load_ext", "aix_jupyter")  # already loaded: a no-op
    assert "aix" in ip.magics_manager.magics["line"]
    ip.run_line_magic("unload_ext", "aix_jupyter")
    assert "aix" not in ip.magics_manager.magics["line"]
    assert "aix" not in ip.magics_manager.magics["cell"]
    assert not any(type(c).__name__ == "AixMagics" for c in ip.configurables)
    ip.run_line_magic("load_ext", "aix_jupyter")
    assert "aix" in ip.magics_manager.magics["cell"]
