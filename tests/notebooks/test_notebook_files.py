"""The tutorial notebooks are committed in a state where nbval's comparison means something.

nbval (run over ``notebooks/`` by the pytest settings in pyproject.toml) only compares cells that have
stored outputs, so a notebook committed without outputs, or with its key cells ignored, would pass
without checking anything. These checks read the files only (no kernel).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))
IGNORE_TAGS = {"nbval-ignore-output", "nbval-skip"}
IGNORE_MARKERS = ("NBVAL_IGNORE_OUTPUT", "NBVAL_SKIP", "PYTEST_VALIDATE_IGNORE_OUTPUT")
RAISES_TAGS = {"raises-exception", "nbval-raises-exception"}
SECRET_PATTERNS = [
    re.compile(r"(TEAM|AIXPLAIN)_API_KEY\s*=\s*['\"]?[A-Za-z0-9_\-]{8,}"),
    re.compile(r"x-api-key['\"]?\s*[:=]\s*['\"]?[A-Za-z0-9_\-]{8,}", re.I),
    re.compile(r"Authorization['\"]?\s*[:=]\s*['\"]?Token\s+[A-Za-z0-9_\-]{8,}", re.I),
]


def _code_cells(path: Path) -> list[dict]:
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _ignored(cell: dict) -> bool:
    tags = set(cell.get("metadata", {}).get("tags", []))
    return bool(tags & IGNORE_TAGS) or any(marker in _source(cell) for marker in IGNORE_MARKERS)


def test_the_tutorial_is_there():
    names = {p.stem for p in NOTEBOOKS}
    assert {
        "01_quickstart",
        "02_magics",
        "03_widgets",
        "04_serve_your_own_model",
        "05_async_jobs",
        "06_hosted_platform",
        "07_batch_and_compare",
    } <= names, names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_executed_in_order_with_outputs(path: Path):
    cells = _code_cells(path)
    counts = [c["execution_count"] for c in cells]
    assert None not in counts, f"{path.name}: not executed (re-run it with nbconvert --execute)"
    assert counts == list(range(1, len(cells) + 1)), f"{path.name}: not executed top to bottom: {counts}"
    with_output = [c for c in cells if c["outputs"]]
    assert len(with_output) >= 0.8 * len(cells), f"{path.name}: most cells have no stored output"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_key_cells_are_compared(path: Path):
    cells = _code_cells(path)
    compared = [c for c in cells if c["outputs"] and not _ignored(c)]
    assert len(compared) >= 5, f"{path.name}: only {len(compared)} cells are compared by nbval"
    assert sum(map(_ignored, cells)) <= max(1, len(cells) // 10), f"{path.name}: too many ignored cells"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_errors_only_where_expected(path: Path):
    for number, cell in enumerate(_code_cells(path), 1):
        tags = set(cell.get("metadata", {}).get("tags", []))
        has_error = any(o["output_type"] == "error" for o in cell["outputs"])
        expects_error = bool(tags & RAISES_TAGS) or "NBVAL_RAISES_EXCEPTION" in _source(cell)
        assert has_error == expects_error, (
            f"{path.name} code cell {number}: error={has_error}, tagged={expects_error}"
        )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_secrets(path: Path):
    text = path.read_text()
    for pattern in SECRET_PATTERNS:
        assert not pattern.search(text), f"{path.name}: looks like a credential: {pattern.pattern}"
