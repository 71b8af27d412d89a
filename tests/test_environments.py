"""Every way to install asvd gets the same versions: pip with the lock (README, CI), conda
(environment.yml) and the per-rule conda environment (workflow/envs/asvd.yaml) all follow
requirements-lock.txt, and torch is pinned alike everywhere."""

from __future__ import annotations

import re
import subprocess
import sys

import yaml

from conftest import REPO

TORCH = re.compile(r"torch==[0-9][\w.+]*")


def pip_lines(path) -> list[str]:
    [pip] = [entry["pip"] for entry in yaml.safe_load(path.read_text())["dependencies"]
             if isinstance(entry, dict)]
    return pip


def test_the_environment_files_are_written_from_the_lock():
    result = subprocess.run([sys.executable, str(REPO / ".ci" / "write_envs.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_rule_environment_pins_every_package_at_the_locks_version():
    lock = [line for line in (REPO / "requirements-lock.txt").read_text().splitlines()
            if line and not line.startswith("#")]
    pins = pip_lines(REPO / "workflow/envs/asvd.yaml")
    assert pins[1:] == lock and all("==" in pin for pin in pins)
    conda = pip_lines(REPO / "environment.yml")
    assert "-c requirements-lock.txt" in conda and '-e ".[test]"' in conda


def test_torch_is_pinned_alike_in_readme_ci_and_both_environments():
    pinned = {name: set(TORCH.findall((REPO / name).read_text()))
              for name in ("README.md", ".ci/run", "environment.yml", "workflow/envs/asvd.yaml")}
    assert all(pins == {"torch==2.13.0"} for pins in pinned.values()), pinned
    assert pip_lines(REPO / "environment.yml")[0] == "torch==2.13.0"
