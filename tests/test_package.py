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


def test_type_checking_imports_match_the_lazy_exports():
    """The names IDEs see (the TYPE_CHECKING block) are exactly the lazily exported ones, from the same
    modules; ``__all__`` is derived from the same table."""
    import ast
    from pathlib import Path

    tree = ast.parse(Path(aix_jupyter.__file__).read_text(encoding="utf-8"))
    block = next(
        n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", "") == "TYPE_CHECKING"
    )
    seen = {alias.name: node.module for node in block.body for alias in node.names}
    assert seen == aix_jupyter._EXPORTS
    assert set(aix_jupyter.__all__) == {
        *aix_jupyter._EXPORTS,
        "__version__",
        "load_ipython_extension",
        "unload_ipython_extension",
    }


def test_users_meet_these_errors_and_helpers_at_the_top():
    from aix_jupyter.backend.registry import RegistrationError, unregister_model
    from aix_jupyter.magics.errors import MagicUsageError, RunFailed

    assert aix_jupyter.RegistrationError is RegistrationError
    assert aix_jupyter.unregister_model is unregister_model
    assert aix_jupyter.MagicUsageError is MagicUsageError and aix_jupyter.RunFailed is RunFailed
    assert issubclass(MagicUsageError, aix_jupyter.AixError) and issubclass(RunFailed, aix_jupyter.AixError)


def test_every_public_function_and_method_of_the_notebook_layer_has_a_docstring():
    import ast
    from pathlib import Path

    root = Path(aix_jupyter.__file__).parent
    files = [root / "__init__.py", root / "display.py", root / "progress.py", root / "frontend.py"]
    files += sorted((root / "magics").glob("*.py")) + sorted((root / "widgets").glob("*.py"))
    missing = []
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef) and not node.name.startswith("_"):
                methods = node.body if isinstance(node, ast.ClassDef) else []
                members = [node, *(m for m in methods if isinstance(m, ast.FunctionDef))]
                missing += [
                    f"{path.name}:{m.lineno} {m.name}"
                    for m in members
                    if not m.name.startswith("_") and not ast.get_docstring(m)
                ]
    assert missing == []
