"""Code fingerprints: a content hash of a stage script and every package module it imports.

The modules are found by following import statements (top-level and inside functions) from the
script through the package, so the list cannot go stale: editing any module a stage runs changes
that rule's fingerprint, and the workflow passes it as a parameter so Snakemake reruns the rule.
Only the standard library is used; the Snakefile calls this while it is parsed.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path


def _module_file(name: str, root: Path) -> Path | None:
    """The file of module ``name`` under ``root``, or None when ``name`` is not a module (an
    attribute imported with ``from package import name``)."""
    path = root.joinpath(*name.split("."))
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return None


def _module_name(path: Path, root: Path) -> str | None:
    """The dotted name of a package file, None for a file outside ``root`` (a script)."""
    try:
        parts = list(path.relative_to(root).with_suffix("").parts)
    except ValueError:
        return None
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: Path, root: Path) -> set[str]:
    """Every dotted name an import statement of ``path`` may load (absolute or relative); imports
    under ``if TYPE_CHECKING:`` never run and do not count."""
    tree = ast.parse(path.read_bytes(), filename=str(path))
    module = _module_name(path, root)
    # the package a relative import starts from: the module itself for a package's __init__
    package = (module if path.name == "__init__.py" else module.rpartition(".")[0]) if module else ""
    names: set[str] = set()
    for node in _executed_nodes(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0]  # level 1: the package itself
                stem = f"{base}.{node.module}" if node.module else base
            else:
                stem = node.module
            names.add(stem)
            names.update(f"{stem}.{alias.name}" for alias in node.names)
    return names


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _executed_nodes(tree: ast.AST):
    """Every node of ``tree`` except those under ``if TYPE_CHECKING:``, imports for type checkers
    that never run."""
    pending = [tree]
    while pending:
        node = pending.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            pending.extend(node.orelse)
        else:
            pending.extend(ast.iter_child_nodes(node))


def import_closure(script: Path, root: Path, package: str = "asvd") -> list[Path]:
    """The files of ``package`` (under ``root``) that running ``script`` imports, sorted.

    Importing ``a.b.c`` runs ``a/__init__.py`` and ``a/b/__init__.py`` too, so those count.
    """
    found: set[Path] = set()
    pending = [Path(script)]
    while pending:
        for name in imported_names(pending.pop(), root):
            parts = name.split(".")
            if parts[0] != package:
                continue
            for depth in range(1, len(parts) + 1):
                path = _module_file(".".join(parts[:depth]), root)
                if path is not None and path not in found:
                    found.add(path)
                    pending.append(path)
    return sorted(found)


def code_fingerprint(script: Path, root: Path, package: str = "asvd") -> str:
    """A short hash of ``script`` and its import closure in ``package`` (names and contents)."""
    digest = hashlib.sha256()
    for path in [Path(script), *import_closure(script, root, package)]:
        name = path.relative_to(root) if path.is_relative_to(root) else Path(path.name)
        digest.update(name.as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]
