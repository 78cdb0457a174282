"""Run inside a virtualenv that holds an installed synmon: what the installed packages hold.

tests/system/test_packaging.py runs it as ``python -I packaging_probe.py PACKAGE...`` with the
virtualenv's interpreter, so that nothing of the checkout is on ``sys.path`` (``-I``
leaves out the script's own folder and every ``PYTHON*`` variable). It prints one JSON
document:

- ``modules``: every module that pkgutil finds in the installed packages;
- ``errors``: the modules that failed to import, with their traceback;
- ``files``: the ``__file__`` of every module loaded after the imports;
- ``undeclared``: third-party imports in the installed code whose distribution is not
  among synmon's declared requirements (followed transitively), with the file.
"""

from __future__ import annotations

import ast
import importlib
import json
import pkgutil
import sys
import traceback
from importlib.metadata import PackageNotFoundError, distribution, packages_distributions
from pathlib import Path
from typing import Any

# Alembic runs env.py itself, inside a migration context; `synmon migrate` exercises it.
RUN_BY_ALEMBIC = {"app.storage.migrations.env"}


def walk(packages: list[str]) -> tuple[list[str], dict[str, str]]:
    found: list[str] = []
    errors: dict[str, str] = {}

    def failed(name: str) -> None:
        errors[name] = traceback.format_exc()

    for top in packages:
        try:
            package = importlib.import_module(top)
        except Exception:  # noqa: BLE001 - whatever a module raises is what the test reports
            failed(top)
            continue
        found.append(top)
        found += [info.name for info in pkgutil.walk_packages(package.__path__, f"{top}.", failed)]
    return found, errors


def import_every(modules: list[str], errors: dict[str, str]) -> None:
    for name in modules:
        if name in RUN_BY_ALEMBIC or name in errors:
            continue
        try:
            importlib.import_module(name)
        except BaseException:  # noqa: BLE001 - a module that exits on import fails too
            errors[name] = traceback.format_exc()


def _handles_import_error(node: ast.Try) -> bool:
    names = {"ImportError", "ModuleNotFoundError"}
    for handler in node.handlers:
        caught = handler.type
        elements = caught.elts if isinstance(caught, ast.Tuple) else [caught]
        if any(isinstance(e, ast.Name) and e.id in names for e in elements):
            return True
    return False


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def required_imports(tree: ast.AST) -> set[str]:
    """Top-level names the code imports for real: not under ``if TYPE_CHECKING`` and not
    inside a ``try`` that handles ImportError (those are optional, with a message)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Try) and _handles_import_error(node):
            for child in [*node.handlers, *node.orelse, *node.finalbody]:
                visit(child)
            return
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def requirement_closure(root: str) -> set[str]:
    """synmon's install_requires and theirs, transitively, extras as requested."""
    # Imported only now, after the imports above: the probe's own imports stay out of them.
    from packaging.requirements import Requirement

    seen: set[tuple[str, tuple[str, ...]]] = set()
    pending: list[tuple[str, tuple[str, ...]]] = [(root, ())]
    while pending:
        name, extras = pending.pop()
        if (_canonical(name), extras) in seen:
            continue
        seen.add((_canonical(name), extras))
        try:
            requires = distribution(name).requires or []
        except PackageNotFoundError:
            continue
        for text in requires:
            requirement = Requirement(text)
            marker = requirement.marker
            if marker is None or any(marker.evaluate({"extra": e}) for e in ("", *extras)):
                pending.append((requirement.name, tuple(sorted(requirement.extras))))
    return {name for name, _ in seen}


def undeclared(packages: list[str]) -> dict[str, list[str]]:
    own = set(packages)
    owners = packages_distributions()
    allowed = requirement_closure("synmon")
    problems: dict[str, list[str]] = {}
    for top in packages:
        root = Path(importlib.import_module(top).__file__ or "").parent
        for file in sorted(root.rglob("*.py")):
            for name in required_imports(ast.parse(file.read_text(), str(file))):
                if name in own or name in sys.stdlib_module_names or name == "__future__":
                    continue
                distributions = {_canonical(d) for d in owners.get(name, [])}
                if not distributions & allowed:
                    problems.setdefault(name, []).append(str(file))
    return problems


def main(packages: list[str]) -> dict[str, Any]:
    modules, errors = walk(packages)
    import_every(modules, errors)
    files = {
        name: str(getattr(module, "__file__", None) or "")
        for name, module in list(sys.modules.items())
    }
    return {
        "modules": modules,
        "errors": errors,
        "files": files,
        "undeclared": undeclared(packages),
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
