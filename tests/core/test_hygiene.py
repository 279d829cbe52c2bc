"""Import weight, logging hygiene and where the key does not appear."""

from __future__ import annotations

import logging
import subprocess
import sys

from aix_jupyter import Model
from tests.core.conftest import KEY
from tests.core.wireserver import Reply


def test_importing_the_core_configures_no_logging_and_no_heavy_modules():
    code = (
        "import sys, logging\n"
        "import aix_jupyter.core.config, aix_jupyter.core.response, aix_jupyter.core.streaming\n"
        "import aix_jupyter.core.polling, aix_jupyter.core.protocol\n"
        "assert 'httpx' not in sys.modules, 'httpx'\n"
        "assert logging.getLogger().handlers == [] and logging.getLogger().level == logging.WARNING\n"
        "import aix_jupyter.core.model, aix_jupyter.core.factory\n"
        "assert 'httpx' not in sys.modules, 'httpx on model import'\n"
        "assert logging.getLogger().handlers == [] and logging.getLogger().level == logging.WARNING\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_key_never_logged_even_at_debug(server, model, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    server.job_seconds = 0.2
    server.script("GET /api/v1/data/", Reply(503, json={"error": "busy"}))
    path = tmp_path / "f.txt"
    path.write_text("x")
    model.run(str(path), wait_time=0.2)
    list(model.run_stream("a b"))
    Model("echo", url=server.url + "/nowhere", api_key=KEY).run("x")
    assert caplog.records  # something was logged (retries), and none of it has the key
    assert all(KEY not in r.getMessage() for r in caplog.records)


def test_key_absent_from_repr_to_dict_and_errors(server, model):
    assert KEY not in repr(model) and KEY not in str(model.to_dict())
    assert KEY not in repr(model.endpoints())
    server.script("POST /api/v2/execute", Reply(403, json={"error": "forbidden"}))
    assert KEY not in model.run("x").error_message
