"""The layering of the packages, read from their imports (module-level and inside functions).

``manualqa.lib`` is plain Python that every app may use, so it imports no Django and no app;
``curation`` (manuals, pairs, endpoints) is the base the apps build on, so it imports neither
``training`` nor ``chat``; ``chat`` reads a trained model's prompt format from its endpoint, so
it does not import ``training``; ``training`` may import ``chat``, because its evaluation puts
questions to assistants. Migrations are history and are not read.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: package -> top-level names its modules must never import.
FORBIDDEN = {
    "manualqa/lib": ("django", "rest_framework", "celery", "curation", "training", "chat"),
    "curation": ("training", "chat"),
    "chat": ("training",),
}


def imported_names(path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports, anywhere in the file, with its line."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and _is_dynamic_import(node):
            found.append((node.lineno, node.args[0].value))
    return found


def _is_dynamic_import(node: ast.Call) -> bool:
    name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
    return (
        name in {"import_module", "__import__"}
        and bool(node.args)
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    )


def modules(package: str) -> list[Path]:
    return [
        path
        for path in sorted((ROOT / package).rglob("*.py"))
        if "migrations" not in path.relative_to(ROOT).parts
    ]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_imports_nothing_above_its_layer(package):
    assert modules(package), f"no modules found under {package}"
    broken = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in modules(package)
        for line, name in imported_names(path)
        if name.split(".")[0] in FORBIDDEN[package]
    ]
    assert broken == []


def test_the_reader_sees_imports_inside_functions(tmp_path):
    module = tmp_path / "m.py"
    module.write_text(
        "import os\n"
        "def f():\n"
        "    from training.models import TrainingJob\n"
        "    importlib.import_module('chat.services')\n"
    )
    assert [name for _, name in imported_names(module)] == [
        "os",
        "training.models",
        "chat.services",
    ]
