import subprocess
import sys

import aix_jupyter


def test_all_names_resolve():
    for name in aix_jupyter.__all__:
        assert getattr(aix_jupyter, name) is not None, name


def test_unknown_name_raises():
    try:
        aix_jupyter.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_import_is_light():
    """Importing the package pulls in none of the heavy libraries and configures no logging."""
    code = (
        "import sys, logging; import aix_jupyter; "
        "heavy = [m for m in ('httpx', 'pydantic', 'ipywidgets', 'starlette', 'uvicorn', 'numpy') "
        "if m in sys.modules]; "
        "assert not heavy, heavy; "
        "assert logging.getLogger().handlers == [], logging.getLogger().handlers; "
        "assert logging.getLogger().level == logging.WARNING"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
