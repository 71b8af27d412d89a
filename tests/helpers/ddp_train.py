"""Train a small model under the constraint with accelerate; run by torchrun with 1 or 2 processes.

Every process draws the same global batches and trains on its own contiguous slice, so a
2-process DDP run sees exactly the gradients (mean over the global batch) of a 1-process run.
Usage: torchrun --standalone --nproc_per_node N ddp_train.py OUT.safetensors
"""

import sys

import torch
from accelerate import Accelerator
from safetensors.torch import save_file

from asvd.method import ranks
from asvd.method.constraint import OrthogonalSubspace

GLOBAL_BATCH, STEPS = 16, 20


def main(out: str) -> None:
    accelerator = Accelerator(cpu=True)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(12, 24), torch.nn.Tanh(), torch.nn.Linear(24, 8))
    constraint = OrthogonalSubspace(model, [r"^0$", r"^2$"], ranks.Uniform(unfreeze=0.5))
    optimizer = constraint.wrap(torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1))
    model, optimizer = accelerator.prepare(model, optimizer)
    data = torch.Generator().manual_seed(1)
    share = GLOBAL_BATCH // accelerator.num_processes
    rows = slice(accelerator.process_index * share, (accelerator.process_index + 1) * share)
    for _ in range(STEPS):
        x = torch.randn(GLOBAL_BATCH, 12, generator=data)
        loss = (model(x[rows]) - torch.sin(x[rows, :8])).pow(2).mean()
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
    if accelerator.is_main_process:
        state = accelerator.unwrap_model(model).state_dict()
        save_file({k: v.contiguous() for k, v in state.items()}, out,
                  metadata={"max_violation": repr(constraint.max_violation())})


if __name__ == "__main__":
    main(sys.argv[1])
