"""An IPython shell with ``%load_ext aix_jupyter``, and helpers to run cells and read their outputs."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output


@dataclass
class Cell:
    result: Any
    error: BaseException | None
    stdout: str
    stderr: str
    outputs: list[Any] = field(default_factory=list)  # IPython RichOutput: data, metadata, transient, update

    @property
    def displays(self) -> list[dict[str, Any]]:
        return [o.data for o in self.outputs]


@pytest.fixture
def ip(monkeypatch: pytest.MonkeyPatch):
    """The IPython singleton with the extension loaded (unloaded again after the test).

    ``%config AixMagics.x = ...`` merges into the singleton's ``config``, which the next test's
    ``AixMagics`` would load again (a default model, a timeout...): the config is restored after the test.
    """
    monkeypatch.delenv("AIX_FRONTEND", raising=False)  # no kernel: the "terminal" frontend
    shell = InteractiveShell.instance()
    saved_config = copy.deepcopy(shell.config)
    shell.run_line_magic("load_ext", "aix_jupyter")
    yield shell
    shell.run_line_magic("unload_ext", "aix_jupyter")
    shell.config.clear()
    shell.config.update(saved_config)
    for name in [n for n in shell.user_ns if not n.startswith("_") and n not in shell.user_ns_hidden]:
        shell.user_ns.pop(name, None)


def run_cell(shell: InteractiveShell, source: str) -> Cell:
    """Run ``source`` as a cell, capturing stdout, stderr and display outputs."""
    with capture_output(display=True) as cap:
        result = shell.run_cell(source, store_history=True)
    return Cell(
        result.result, result.error_in_exec or result.error_before_exec, cap.stdout, cap.stderr, cap.outputs
    )


@pytest.fixture
def cell(ip):
    return lambda source: run_cell(ip, source)
