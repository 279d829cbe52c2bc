"""Start-up: ``%load_ext aix_jupyter`` vs ``import aixplain.modules.model`` vs jupyter-ai's magics.

    .venv/bin/python benchmarks/bench_startup.py [--quick]

Each sample is a fresh interpreter that creates an IPython ``InteractiveShell`` (the "bare IPython"),
then times one step in-process with ``time.perf_counter``: loading our extension (project venv),
importing the SDK's model module or loading jupyter-ai's magics (comparison venv), or nothing (bare).
RSS after the step comes from /proc/self/status. Variants run interleaved in shuffled order, round by
round; one warm-up round (byte-compiling, page cache) is discarded.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time

from common import CMP_PY, OUR_PY, SETUP_HINT, compare_has, median, pct, require, save

CHILD = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
t_proc = time.perf_counter()
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
rss_bare = rss_mb()
step = sys.argv[1]
t0 = time.perf_counter()
if step == "load_ext":
    shell.run_line_magic("load_ext", sys.argv[2])
    assert sys.argv[2] in shell.extension_manager.loaded, "extension did not load"
elif step == "import":
    __import__(sys.argv[2])
dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "rss_mb": rss_mb(), "rss_bare_mb": rss_bare,
                  "ipython_seconds": t0 - t_proc, "modules": len(sys.modules)}))
"""

CLEAN_ENV = {
    k: v
    for k, v in os.environ.items()
    if k not in ("TEAM_API_KEY", "AIXPLAIN_API_KEY", "MODELS_RUN_URL", "BACKEND_URL", "AIX_BACKEND_URL")
}


def variants() -> dict[str, list[str]]:
    v = {
        "bare IPython (project venv)": [str(OUR_PY), "-c", CHILD, "none"],
        "%load_ext aix_jupyter": [str(OUR_PY), "-c", CHILD, "load_ext", "aix_jupyter"],
    }
    if compare_has("base"):
        v["bare IPython (comparison venv)"] = [str(CMP_PY), "-c", CHILD, "none"]
    if compare_has("aixplain"):
        v["import aixplain.modules.model"] = [str(CMP_PY), "-c", CHILD, "import", "aixplain.modules.model"]
    if compare_has("jupyter_ai_magics"):
        v["%load_ext jupyter_ai_magics"] = [str(CMP_PY), "-c", CHILD, "load_ext", "jupyter_ai_magics"]
    return v


def sample(cmd: list[str]) -> dict[str, float]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=CLEAN_ENV, timeout=120, cwd="/tmp")
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[3:]} failed: {proc.stderr.strip().splitlines()[-1:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_seconds"] = wall
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 rounds instead of 15")
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args()
    require(OUR_PY.exists(), f"no project venv at {OUR_PY}: run `make install`")
    require(compare_has("aixplain"), f"the comparison venv has no aixplain: {SETUP_HINT}")
    rounds = args.rounds or (5 if args.quick else 15)
    v = variants()
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in v}
    for cmd in v.values():  # warm-up, discarded
        sample(cmd)
    deadline = time.monotonic() + 900
    for r in range(rounds):
        order = list(v)
        random.shuffle(order)
        for name in order:
            samples[name].append(sample(v[name]))
        print(f"round {r + 1}/{rounds}", file=sys.stderr)
        if time.monotonic() > deadline:
            break
    summary = {}
    for name, ss in samples.items():
        secs = [s["seconds"] for s in ss]
        summary[name] = {
            "median_ms": round(median(secs) * 1000, 2),
            "p90_ms": round(pct(secs, 0.9) * 1000, 2),
            "rss_mb": round(median([s["rss_mb"] for s in ss]), 1),
            "rss_added_mb": round(median([s["rss_mb"] - s["rss_bare_mb"] for s in ss]), 1),
            "process_ms": round(median([s["process_seconds"] for s in ss]) * 1000, 1),
            "modules": int(median([s["modules"] for s in ss])),
            "n": len(ss),
        }
    ours = summary["%load_ext aix_jupyter"]["median_ms"]
    sdk = summary["import aixplain.modules.model"]["median_ms"]
    ratios = {"load_ext aix_jupyter / import aixplain.modules.model": round(ours / sdk, 3)}
    if "%load_ext jupyter_ai_magics" in summary:
        jai = summary["%load_ext jupyter_ai_magics"]["median_ms"]
        ratios["load_ext aix_jupyter / load_ext jupyter_ai_magics"] = round(ours / jai, 3)
    bare = summary["bare IPython (project venv)"]
    ratios["process time with aix_jupyter / bare IPython"] = round(
        summary["%load_ext aix_jupyter"]["process_ms"] / bare["process_ms"], 3
    )
    result = {
        "mode": "quick" if args.quick else "full",
        "rounds": rounds,
        "summary": summary,
        "ratios": ratios,
        "target": "load_ext aix_jupyter <= 0.15 x import aixplain.modules.model; well under 150 ms",
        "met": ours <= 0.15 * sdk and ours < 150,
    }
    print(json.dumps({"summary": summary, "ratios": ratios}, indent=2))
    save("startup", result)


if __name__ == "__main__":
    main()
