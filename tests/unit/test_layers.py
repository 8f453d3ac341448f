"""Imports follow the layers: a package's private modules and names stay inside it,
and the storage backends share only what :mod:`pairns.storage.base` holds."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pairns

PACKAGE = Path(pairns.__file__).parent


def _modules() -> Iterator[tuple[str, str, ast.Module]]:
    """``(module, package, tree)`` of every module of pairns."""
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = ("pairns", *path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            module = package = ".".join(parts[:-1])
        else:
            module, package = ".".join(parts), ".".join(parts[:-1])
        yield module, package, ast.parse(path.read_text(), str(path))


def _imports(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """``(line, dotted name)`` of every absolute import in *tree*, down to the names a
    ``from`` import takes."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"


def _private_owner(dotted: str) -> str | None:
    """The package a private module or name in *dotted* belongs to, if it has one."""
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[:i])
    return None


def test_no_module_imports_what_another_package_keeps_private() -> None:
    offences = []
    for module, package, tree in _modules():
        for line, dotted in _imports(tree):
            owner = _private_owner(dotted) if dotted.startswith("pairns.") else None
            if owner is not None and package != owner and not package.startswith(owner + "."):
                offences.append(f"{module}:{line} imports {dotted}")
    assert offences == []


def test_the_storage_backends_do_not_import_each_other() -> None:
    backends = {"pairns.storage.memory", "pairns.storage.sqlite"}
    offences = [
        f"{module}:{line} imports {dotted}"
        for module, _, tree in _modules()
        if module in backends
        for line, dotted in _imports(tree)
        if any(dotted == b or dotted.startswith(b + ".") for b in backends - {module})
    ]
    assert offences == []


def test_the_checks_see_an_offence() -> None:
    tree = ast.parse("from pairns.namespace._slots import x\nimport pairns.storage.memory\n")
    found = list(_imports(tree))
    assert (1, "pairns.namespace._slots.x") in found
    assert _private_owner("pairns.namespace._slots.x") == "pairns.namespace"
    assert _private_owner("pairns._collector") == "pairns"
    assert _private_owner("pairns.storage.memory") is None
