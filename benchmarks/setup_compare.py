"""Create benchmarks/.venv-compare: the comparison tools, kept out of the package's dependencies.

    python3.11 benchmarks/setup_compare.py

Installs the official aiXplain SDK (pinned 0.2.48, the release PROTOCOL.md was read from), jupyter-ai's
magics and IPython into a separate virtual environment. The project's own side of every benchmark runs
from the project's venv (.venv); each figure is measured by the runner with both interpreters side by
side in one run. A comparison tool that fails to install is recorded in .venv-compare/install-status.json
and the benchmarks that need it report it as missing instead of a figure.
"""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-compare"
PY = VENV / "bin" / "python"
# Each group installs on its own so that one failure does not hide the others.
GROUPS: dict[str, list[str]] = {
    "base": ["ipython>=8.12", "httpx>=0.27,<1", "psutil>=5.9"],
    "aixplain": ["aixplain==0.2.48"],
    "jupyter_ai_magics": ["jupyter-ai-magics"],
}


def main() -> int:
    if not PY.exists():
        print(f"creating {VENV}")
        venv.EnvBuilder(with_pip=True, clear=False).create(VENV)
        subprocess.run([str(PY), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    status: dict[str, dict[str, str]] = {}
    for name, reqs in GROUPS.items():
        print(f"installing {name}: {' '.join(reqs)}")
        proc = subprocess.run(
            [str(PY), "-m", "pip", "install", "-q", *reqs], capture_output=True, text=True, timeout=1800
        )
        if proc.returncode == 0:
            status[name] = {"ok": "yes"}
        else:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            status[name] = {"ok": "no", "error": " | ".join(tail)}
            print(f"  FAILED: {status[name]['error']}", file=sys.stderr)
    freeze = subprocess.run([str(PY), "-m", "pip", "freeze"], capture_output=True, text=True).stdout
    versions = {
        line.split("==")[0].lower().replace("_", "-"): line.split("==")[1]
        for line in freeze.splitlines()
        if "==" in line
    }
    for key in ("aixplain", "jupyter-ai-magics", "ipython", "httpx"):
        if key in versions:
            status.setdefault("versions", {})[key] = versions[key]
    (VENV / "install-status.json").write_text(json.dumps(status, indent=2))
    print(json.dumps(status, indent=2))
    return 0 if status["base"]["ok"] == "yes" else 1


if __name__ == "__main__":
    raise SystemExit(main())
