"""Every file, module and documentation section the code and docs cite exists in the repository."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from conftest import REPO

TEXT_SUFFIXES = {".py", ".md", ".smk", ".yaml", ".yml", ".rst", ".toml", ".cfg", ".txt", ""}
# a repository path: one of the project's folders, then path characters
PATH = re.compile(r"(?<![\w./-])((?:asvd|docs|config|tests|workflow|benchmarks|profiles|\.ci)/"
                  r"[\w.-]+(?:/[\w.-]+)*/?)")
# a top-level document such as README.md, or a reference file outside the project
DOCUMENT = re.compile(r"(?<![\w./-])([A-Z][A-Z_]+\.md)\b")
MODULE = re.compile(r"(?<![\w./-])asvd((?:\.[A-Za-z_]\w*)+)")
SECTION = re.compile(r"docs/(\w+)\.md §(\d+(?:\.\d+)?)(?:-§(\d+(?:\.\d+)?))?")


def _sources() -> list[Path]:
    """The repository's tracked text files (what a clean clone has), this test's file aside."""
    import subprocess

    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True)
    found = []
    for name in listed.stdout.decode().split("\0"):
        path = REPO / name
        if name and path.is_file() and path.suffix in TEXT_SUFFIXES and path != Path(__file__):
            found.append(path)
    return sorted(found)


SOURCES = _sources()


# a worked example's diff: the lines it adds name what the example creates, not what exists
DIFF_BLOCK = re.compile(r"^```diff\n.*?^```$", re.M | re.S)


def _without_added_lines(diff: re.Match) -> str:
    return "\n".join(line for line in diff.group(0).splitlines() if not line.startswith("+"))


def _citations(pattern: re.Pattern) -> list[tuple[str, str]]:
    cited = []
    for path in SOURCES:
        text = DIFF_BLOCK.sub(_without_added_lines, path.read_text(errors="replace"))
        cited += [(str(path.relative_to(REPO)), match.group(1)) for match in pattern.finditer(text)]
    return cited


def _missing_path(cited: str) -> bool:
    path = REPO / cited.rstrip(".")
    return not (path.exists() or any(path.parent.glob(path.name + "*")))


def test_cited_repository_paths_exist():
    missing = [(where, cited) for where, cited in _citations(PATH) if _missing_path(cited)]
    assert not missing, missing


def test_cited_documents_exist():
    missing = sorted({(where, cited) for where, cited in _citations(DOCUMENT)
                      if not (REPO / cited).exists()})
    assert not missing, missing


def _resolves(dotted: str) -> bool:
    """Whether ``asvd<dotted>`` names a package, a module or something inside a module."""
    folder = REPO / "asvd"
    parts = dotted.strip(".").split(".")
    for index, part in enumerate(parts):
        if (folder / part).is_dir():
            folder = folder / part
        elif (folder / f"{part}.py").is_file():  # the name after a module is defined in it
            rest = parts[index + 1:]
            return not rest or rest[0] in _module_names(folder / f"{part}.py")
        else:
            return part in _module_names(folder / "__init__.py")
    return True


def _module_names(path: Path) -> set[str]:
    """What a module (or a package's ``__init__.py``) defines, imports or lists in ``__all__``."""
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body if path.is_file() else []:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {target.id for target in targets if isinstance(target, ast.Name)}
            if any(getattr(target, "id", "") == "__all__" for target in targets):
                names |= set(ast.literal_eval(node.value))
    return names


def test_cited_package_modules_exist():
    missing = sorted({(where, f"asvd{name}") for where, name in _citations(MODULE)
                      if not _resolves(name)})
    assert not missing, missing


def _headings(doc: str) -> set[str]:
    text = (REPO / "docs" / f"{doc}.md").read_text()
    return {match.group(1) for match in re.finditer(r"^#+ (\d+(?:\.\d+)?)\.? ", text, re.M)}


def test_cited_documentation_sections_exist():
    cited = []
    for path in SOURCES:
        for match in SECTION.finditer(path.read_text(errors="replace")):
            doc, *sections = match.groups()
            cited += [(str(path.relative_to(REPO)), doc, section) for section in sections if section]
    assert cited, "no code cites the docs"
    missing = [entry for entry in cited if entry[2] not in _headings(entry[1])]
    assert not missing, missing


@pytest.mark.parametrize("pattern, text, found", [
    (PATH, "see asvd/method/ranks.py and docs/method.md.", ["asvd/method/ranks.py", "docs/method.md."]),
    (PATH, "results/x/asvd/y", []),
    (DOCUMENT, "as METHOD.md s4 says", ["METHOD.md"]),
    (MODULE, "`asvd.analysis.tables` reads; myasvd.x no", [".analysis.tables"]),
    (SECTION, "docs/benchmarks.md §2-§4", ["benchmarks"]),
])
def test_the_citation_patterns_find_what_they_should(pattern, text, found):
    assert [match.group(1) for match in pattern.finditer(text)] == found


@pytest.mark.parametrize("dotted, exists", [
    (".analysis.tables.write_summary_tables", True), (".method", True), (".OrthogonalSubspace", True),
    (".tables", False), (".analysis.nothing", False), (".method.ranks.Uniform", True),
    (".train.pieces.PIECES", True), (".train.pieces.Piece", True), (".train.pieces.Nothing", False),
    (".__version__", True), (".analysis.figures.draw", False), (".train.loop.TrainSettings.lr", True),
])
def test_module_paths_resolve_through_packages(dotted, exists):
    assert _resolves(dotted) == exists


def test_the_license_file_is_the_one_pyproject_declares():
    import tomllib

    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["license"]["text"]
    assert declared == "MIT"
    assert (REPO / "LICENSE").read_text().startswith("MIT License\n")


def test_the_workflow_catalog_file_names_how_the_workflow_is_used():
    import yaml

    usage = yaml.safe_load((REPO / ".snakemake-workflow-catalog.yml").read_text())["usage"]
    assert set(usage) == {"mandatory-flags", "software-stack-deployment", "report"}
    assert usage["report"] is True and usage["software-stack-deployment"]["conda"] is True
    assert (REPO / "workflow" / "envs" / "asvd.yaml").is_file()  # what conda: true deploys
