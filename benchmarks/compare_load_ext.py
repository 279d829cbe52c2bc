"""``%load_ext aix_jupyter`` of two checkouts side by side (did a change make loading dearer?).

    .venv/bin/python benchmarks/compare_load_ext.py BASE_CHECKOUT [OTHER_CHECKOUT] [--rounds N]

OTHER_CHECKOUT defaults to this one. Each checkout's ``aix_jupyter`` is copied to a temporary
folder and byte-compiled there (so ``PYTHONDONTWRITEBYTECODE`` cannot make one side compile on every
start), then each sample is a fresh interpreter that creates an IPython ``InteractiveShell`` and
times ``%load_ext aix_jupyter`` in-process; the two run interleaved in shuffled order, round by
round, after one discarded warm-up round. Prints the median, p10 and p90 in ms and how many modules
the load added. Compare medians from one run only: the machine's load moves both sides alike.

Measured 2026-12-02 on the 2-core AMD EPYC box, 30 rounds, the notebook layer's reshaping
(``aix_jupyter.magics`` package, ``core.hooks``) against the commit before it: load average 8.5,
before 10.78 ms median (p10 5.93, p90 21.80; +6 modules), after 10.75 ms (p10 6.69, p90 21.57;
+9 modules); load average 5.8, before 9.87 ms (p10 5.89, p90 15.44), after 9.78 ms (p10 5.20,
p90 18.21).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, sys, time
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
before = len(sys.modules)
t0 = time.perf_counter()
shell.run_line_magic("load_ext", "aix_jupyter")
dt = time.perf_counter() - t0
import aix_jupyter
assert aix_jupyter.__file__.startswith(sys.argv[1]), aix_jupyter.__file__
print(json.dumps({"seconds": dt, "modules": len(sys.modules) - before}))
"""

HERE = Path(__file__).resolve().parents[1]


def _staged(checkout: Path, into: Path) -> Path:
    shutil.copytree(checkout / "aix_jupyter", into / "aix_jupyter")
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(into)], check=True, capture_output=True)
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", type=Path)
    parser.add_argument("other", type=Path, nargs="?", default=HERE)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trees = {
            "base": _staged(args.base.resolve(), Path(tmp) / "base"),
            "other": _staged(args.other.resolve(), Path(tmp) / "other"),
        }
        samples: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
        for r in range(args.rounds + 1):
            order = list(trees)
            random.shuffle(order)
            for name in order:
                env = {**os.environ, "PYTHONPATH": str(trees[name])}
                proc = subprocess.run(
                    [sys.executable, "-c", CHILD, str(trees[name])],
                    capture_output=True,
                    text=True,
                    env=env,
                    cwd=tmp,
                    check=True,
                )
                if r:  # round 0 warms the page cache
                    samples[name].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    for name, runs in samples.items():
        ms = sorted(s["seconds"] * 1000 for s in runs)
        print(
            f"{name:5s} ({[args.base, args.other][name == 'other']}): median {statistics.median(ms):.2f} ms, "
            f"p10 {ms[len(ms) // 10]:.2f}, p90 {ms[9 * len(ms) // 10]:.2f}, "
            f"+{int(runs[0]['modules'])} modules, n={len(ms)}"
        )


if __name__ == "__main__":
    main()
