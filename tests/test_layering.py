"""Imports run one way: the method core knows only torch and file I/O, the baselines do not
reach into training, the cost benchmark does not reach into the results' analysis. Checked on
every import statement of the package (at module level and inside functions), by its syntax
tree, so a lazy import cannot hide an upward dependency."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import REPO

# folder -> the package modules it may import (prefixes; the root ``asvd`` for its version)
ALLOWED = {
    "method": ("asvd.method", "asvd.io"),
}
# folder -> package modules it must not import
FORBIDDEN = {
    "method": ("asvd.train", "asvd.pipeline", "asvd.baselines", "asvd.analysis", "asvd.evaluation"),
    "baselines": ("asvd.train", "asvd.pipeline", "asvd.evaluation", "asvd.analysis", "asvd.cost"),
    "cost": ("asvd.analysis", "asvd.train", "asvd.evaluation", "asvd.pipeline"),
    "data": ("asvd.train", "asvd.evaluation", "asvd.analysis", "asvd.cost", "asvd.method"),
}
# third-party libraries the torch-only core must not import
CORE_THIRD_PARTY = ("transformers", "peft", "pandas", "matplotlib", "accelerate", "datasets")


def imported_modules(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in ``path``; relative imports resolved."""
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            found.append((node.lineno, base))
    return found


def within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


def breaks_layering(folder: str, module: str) -> bool:
    if within(module, FORBIDDEN.get(folder, ())):
        return True
    if folder in ALLOWED and within(module, ("asvd",)) and module != "asvd" \
            and not within(module, ALLOWED[folder]):
        return True
    core = folder in ("method", "baselines") and within(module, CORE_THIRD_PARTY)
    return core and not (folder == "baselines" and module == "peft")  # LoRA baselines use peft


def violations(folder: str, root: Path = REPO) -> list[str]:
    return sorted(f"{path.relative_to(root)}:{line} imports {module}"
                  for path in (root / "asvd" / folder).rglob("*.py")
                  for line, module in imported_modules(path, root)
                  if breaks_layering(folder, module))


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_no_import_runs_upward(folder):
    assert violations(folder) == []


def test_the_check_sees_lazy_relative_and_third_party_imports(tmp_path):
    """Planted upward imports (inside a function, relative, a library the core must not use)
    are all found; an allowed one is not."""
    planted = Path("asvd", "method", "planted.py")  # a file of tmp_path's, not the repository's
    (tmp_path / planted.parent).mkdir(parents=True)
    (tmp_path / planted).write_text(
        "from asvd.io import atomic_path\n"
        "def f():\n    from asvd.train.models import x\n"
        "from ..pipeline import runtime\nimport transformers\n")
    assert violations("method", tmp_path) == [
        f"{planted}:3 imports asvd.train.models", f"{planted}:4 imports asvd.pipeline",
        f"{planted}:5 imports transformers"]
