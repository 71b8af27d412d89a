"""Under DDP (accelerate, 2 CPU processes over gloo) the constrained run equals a 1-process run.

The projection needs no communication under DDP because gradients are all-reduced before the
optimizer step hooks run (METHOD.md s4.6); this test would catch a hook that ran too early.
"""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

HELPER = Path(__file__).parent / "helpers" / "ddp_train.py"


def train(processes: int, out: Path) -> dict[str, torch.Tensor]:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={processes}", str(HELPER), str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(command)} exited {result.returncode}:\n{result.stderr[-3000:]}")
    with safe_open(str(out), framework="pt") as handle:
        assert float(handle.metadata()["max_violation"]) <= 1e-5
    return load_file(out)


@pytest.mark.workflow
def test_two_process_ddp_matches_one_process(tmp_path):
    single = train(1, tmp_path / "single.safetensors")
    ddp = train(2, tmp_path / "ddp.safetensors")
    assert single.keys() == ddp.keys()
    for name in single:
        assert torch.allclose(single[name], ddp[name], atol=1e-5, rtol=0), name
    torch.manual_seed(0)
    initial = torch.nn.Linear(12, 24).weight  # the helper's first layer before training
    assert not torch.allclose(initial, single["0.weight"], atol=1e-3), "training must move the weights"
