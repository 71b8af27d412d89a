"""Write environment.yml and workflow/envs/asvd.yaml from requirements-lock.txt.

Conda users (environment.yml) and `snakemake --sdm conda` jobs (workflow/envs/asvd.yaml) then
install the lock's exact versions, torch pinned as README.md and .ci/run pin it. Run by
.ci/refresh-lock after it rewrites the lock; `--check` fails naming a file that no longer
matches (tests/test_environments.py runs it).

torch: PyPI's torch 2.13.0 wheel for Linux is its CUDA build (it also runs on a CPU); for the
smaller CPU-only build, put `--index-url https://download.pytorch.org/whl/cpu` before the torch
line. Either build gives the same torch version, the one the lock was made with.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements-lock.txt"
TORCH = "torch==2.13.0"
HEADER = ("# Written by .ci/write_envs.py from requirements-lock.txt (bash .ci/refresh-lock); do not edit.\n"
          "# torch: PyPI's Linux wheel of {torch} is its CUDA build (it runs on a CPU too); for the\n"
          "# CPU-only build put `--index-url https://download.pytorch.org/whl/cpu` before the torch line.\n")


def lock_pins(text: str) -> list[str]:
    """The ``name==version`` lines of the lock, in its order."""
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def environment_yml() -> str:
    """The conda environment of the package itself, its tests included: the lock as constraints."""
    return (HEADER.format(torch=TORCH)
            + "# conda env create -f environment.yml && conda activate asvd\n"
            "name: asvd\nchannels:\n  - conda-forge\n  - nodefaults\ndependencies:\n"
            "  - python=3.11\n  - pip\n  - pip:\n"
            f"      - {TORCH}\n      - -c requirements-lock.txt\n      - -e \".[test]\"\n")


def rule_env(pins: list[str]) -> str:
    """Every job's conda environment: the lock's pins themselves (Snakemake builds the env from
    this file's text alone, so it cannot point at the lock); the package comes from the checkout."""
    lines = "".join(f"      - {pin}\n" for pin in [TORCH, *pins])
    return (HEADER.format(torch=TORCH)
            + "# Per-rule conda environment (`snakemake --sdm conda`); the asvd package itself is\n"
            "# imported from the repository (common.smk puts it on PYTHONPATH).\n"
            "channels:\n  - conda-forge\n  - nodefaults\ndependencies:\n  - python=3.11\n  - pip\n"
            "  - pip:\n" + lines)


def expected() -> dict[Path, str]:
    pins = lock_pins(LOCK.read_text(encoding="utf-8"))
    return {ROOT / "environment.yml": environment_yml(),
            ROOT / "workflow/envs/asvd.yaml": rule_env(pins)}


def main(argv: list[str]) -> int:
    stale = [path for path, text in expected().items()
             if not path.is_file() or path.read_text(encoding="utf-8") != text]
    if "--check" in argv:
        for path in stale:
            print(f"{path.relative_to(ROOT)} does not match requirements-lock.txt: "
                  "run python .ci/write_envs.py", file=sys.stderr)
        return 1 if stale else 0
    for path, text in expected().items():
        path.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
