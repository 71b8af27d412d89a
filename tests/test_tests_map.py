"""tests/README.md maps every module of the package to the files that test it; a module added
without a row, a row naming a missing file, or a file that neither imports nor names its
module fails here."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from conftest import REPO

ROW = re.compile(r"^\| `([^`]+)`[^|]*\| (.+) \|$", re.M)


def modules_of(cell: str) -> list[str]:
    """Dotted modules of a row's first cell: ``cost/overhead, comparison`` (a folder and its
    modules), ``train/finetune, pieces/`` (a sub-package), ``io``, ``__init__`` (the package)."""
    folder, _, names = cell.partition("/") if "/" in cell.split(",")[0] else ("", "", cell)
    prefix = f"asvd.{folder}." if folder else "asvd."
    return ["asvd" if name == "__init__" else prefix + name
            for name in (part.strip().rstrip("/") for part in names.split(","))]


def package_modules(root: Path = REPO) -> set[str]:
    """Every module with code: a sub-package whose ``__init__`` holds only its docstring (or
    only that and imports) is a folder, not a module of its own."""
    found = set()
    for path in (root / "asvd").rglob("*.py"):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__main__":
            continue
        if parts[-1] == "__init__" and len(parts) > 2:
            body = ast.parse(path.read_text(encoding="utf-8")).body
            if all(isinstance(node, (ast.Expr, ast.Import, ast.ImportFrom)) for node in body):
                continue
        found.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


def covered(module: str, rows: dict[str, list[str]]) -> bool:
    return any(module == listed or module.startswith(listed + ".") and listed != "asvd"
               for listed in rows)


def imports_or_names(text: str, module: str) -> bool:
    """Whether test source ``text`` imports ``module`` (``import a.b``, ``from a.b import x``,
    ``from a import b``) or names it in words (``asvd.train.parallel``)."""
    parent, _, leaf = module.rpartition(".")
    for node in ast.walk(ast.parse(text)) if text else []:
        if isinstance(node, ast.Import) and any(a.name == module for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module == module or (
                node.module == parent and any(a.name == leaf for a in node.names))):
            return True
    return bool(re.search(rf"(?<![\w.]){re.escape(module)}(?!\w)", text))


def test_every_module_has_a_row_and_every_row_names_files_that_test_it():
    table = (REPO / "tests" / "README.md").read_text(encoding="utf-8")
    rows = [(modules_of(cell), re.findall(r"`(test_\w+\.py)`", files))
            for cell, files in ROW.findall(table) if not cell.startswith("module")]
    listed = {module: files for modules, files in rows for module in modules}
    assert sorted(m for m in package_modules() if not covered(m, listed)) == []
    problems = []
    for modules, names in rows:
        for name in names:
            path = REPO / "tests" / name
            text = path.read_text(encoding="utf-8") if path.is_file() else ""
            if not any(imports_or_names(text, module) for module in modules):
                problems.append(f"{name} neither exists nor imports or names any of {modules}")
    assert problems == []


def test_a_row_reads_its_folder_and_modules():
    assert modules_of("cost/overhead, comparison, figure") == [
        "asvd.cost.overhead", "asvd.cost.comparison", "asvd.cost.figure"]
    assert modules_of("train/finetune, pieces/") == ["asvd.train.finetune", "asvd.train.pieces"]
    assert modules_of("io") == ["asvd.io"] and modules_of("__init__") == ["asvd"]
    assert covered("asvd.train.pieces.lora", {"asvd.train.pieces": []})
    assert not covered("asvd.train.parallel", {"asvd": []})
    modules = package_modules()
    assert {"asvd", "asvd.train.pieces", "asvd.train.pieces.lora", "asvd.io"} <= modules
    assert "asvd.analysis" not in modules  # a folder: its __init__ holds only a docstring
