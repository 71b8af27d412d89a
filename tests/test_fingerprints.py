"""Code fingerprints follow imports: a made-up package, and the real stages against what Python
actually imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from asvd.pipeline.fingerprints import code_fingerprint, import_closure
from conftest import REPO

MODULES = {
    "pkg/__init__.py": "VERSION = 1\n",
    "pkg/core.py": "import math\n",
    "pkg/io.py": "from pkg import core\n",
    "pkg/lazy.py": "def load():\n    from pkg.heavy import thing\n    return thing\n",
    "pkg/heavy.py": "thing = 1\n",
    "pkg/sub/__init__.py": "",
    "pkg/sub/relative.py": "from ..io import core\nfrom . import sibling\n",
    "pkg/sub/sibling.py": "from pkg import VERSION\n",
    "pkg/unused.py": "import pkg.core\n",
}
SCRIPTS = {
    "reads.py": "from pkg.sub.relative import core\n",
    "loads.py": "import os\nif os:\n    from pkg.lazy import load\n",
    "types.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.heavy import thing\n"
                "else:\n    from pkg import io\n",
}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for name, text in {**MODULES, **SCRIPTS}.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def closure(tree: Path, script: str) -> set[str]:
    return {path.relative_to(tree).as_posix() for path in import_closure(tree / script, tree, "pkg")}


def test_relative_imports_and_package_inits_are_followed(tree):
    assert closure(tree, "reads.py") == {
        "pkg/__init__.py", "pkg/core.py", "pkg/io.py", "pkg/sub/__init__.py",
        "pkg/sub/relative.py", "pkg/sub/sibling.py",
    }


def test_imports_inside_functions_and_branches_are_followed(tree):
    assert closure(tree, "loads.py") == {"pkg/__init__.py", "pkg/lazy.py", "pkg/heavy.py"}


def test_imports_for_type_checkers_only_do_not_count(tree):
    assert closure(tree, "types.py") == {"pkg/__init__.py", "pkg/io.py", "pkg/core.py"}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_an_edit_changes_the_fingerprint_of_exactly_the_scripts_that_import_it(tree, module):
    before = {script: code_fingerprint(tree / script, tree, "pkg") for script in SCRIPTS}
    with (tree / module).open("a") as handle:
        handle.write("# an edit\n")
    after = {script: code_fingerprint(tree / script, tree, "pkg") for script in SCRIPTS}
    changed = {script for script in SCRIPTS if before[script] != after[script]}
    assert changed == {script for script in SCRIPTS if module in closure(tree, script)}


HEAVY = ("transformers", "peft", "datasets", "accelerate")


def imports_of(statement: str) -> tuple[set[Path], set[str]]:
    """(package files, heavy libraries) a fresh interpreter has loaded after ``statement``."""
    code = (f"import json, sys; {statement}; "
            "print(json.dumps([sorted(getattr(m, '__file__', None) or '' for n, m in sys.modules.items()"
            " if n == 'asvd' or n.startswith('asvd.')), sorted(set(sys.modules) & set(%r))]))" % (HEAVY,))
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, check=True)
    files, heavy = json.loads(result.stdout)
    return {Path(path).resolve() for path in files if path}, set(heavy)


# The stages' entry modules, each imported alone in a fresh interpreter: every package module
# Python loads must be in the static closure (a miss would let an edit go unnoticed).
@pytest.mark.parametrize("stage", ["train.finetune", "train.base", "method.svd", "analysis.figures",
                                   "analysis.metrics"])
def test_the_closure_contains_every_module_python_imports(stage, tmp_path):
    statement = f"import asvd.{stage}"
    imported, _ = imports_of(statement)
    (tmp_path / "script.py").write_text(statement + "\n")
    static = {path.resolve() for path in import_closure(tmp_path / "script.py", REPO)}
    assert REPO / "asvd" / f"{stage.replace('.', '/')}.py" in imported
    assert imported <= static, sorted(imported - static)


@pytest.mark.parametrize("statement", [
    "import asvd; asvd.OrthogonalSubspace", "import asvd.method.svd", "import asvd.analysis.metrics",
    "import asvd.analysis.tables", "import asvd.analysis.figures", "import asvd.analysis.reference_runs",
])
def test_the_method_and_the_analysis_stages_need_no_model_library(statement):
    """The constraint and the SVD stage need torch only; metrics, tables and figures not even that."""
    _, heavy = imports_of(statement)
    assert heavy == set(), heavy
