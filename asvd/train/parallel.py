"""Data-parallel training inside one job.

Every process runs the same training loop with accelerate's ``Accelerator`` (DDP over NCCL on
GPUs, gloo on CPUs). The processes are started by torch's elastic launcher, the engine behind
``torchrun`` and ``accelerate launch``, from inside the job, so a workflow rule stays one Python
call whatever its GPU count. Each process draws the same seeded global batch and trains on its
own slice of it; :func:`global_batch_loss` makes the all-reduced gradient exactly that of the whole
batch, so N processes train the same model as one process with the same global batch.
"""

from __future__ import annotations

import uuid
from typing import Any, Callable, Mapping

import torch


def process_count(requested: int | None, gpus: int = 0) -> int:
    """``train.num_processes`` if set, else the job's GPUs that torch can see, else 1."""
    if requested is not None:
        if requested < 1:
            raise ValueError(f"train.num_processes: {requested} (expected >= 1 or null)")
        return requested
    return max(1, min(int(gpus), torch.cuda.device_count()))


def launch(function: Callable, kwargs: Mapping[str, Any], processes: int) -> Any:
    """``function(**kwargs)`` in ``processes`` local processes; rank 0's return value.

    One process runs in this one. Several are spawned (not forked: the caller may already run
    OpenMP or CUDA threads), rendezvous on a free local port and each reads its rank from the
    environment the launcher sets, which is what ``Accelerator`` looks for.
    """
    if processes == 1:
        return function(**kwargs)
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=processes,
                          run_id=f"asvd-{uuid.uuid4().hex[:8]}", rdzv_backend="c10d",
                          rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.5,
                          start_method="spawn")
    return elastic_launch(config, _call)(function, dict(kwargs))[0]


def _call(function: Callable, kwargs: Mapping[str, Any]) -> Any:
    return function(**kwargs)


def accelerator():
    """This process's ``Accelerator``: the GPU of its local rank if there is one, else the CPU;
    DDP whenever the launcher started several processes. Unused parameters are allowed (a
    pretrained encoder's pooler never sees a gradient in a seq2seq loss)."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    return Accelerator(cpu=not torch.cuda.is_available(),
                       kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])


def shard(index: torch.Tensor, rank: int, processes: int) -> torch.Tensor:
    """This process's contiguous slice of a global batch's example indices."""
    return torch.tensor_split(index, processes)[rank]


def label_tokens(labels: torch.Tensor, causal: bool) -> int:
    """Tokens that carry loss: a causal LM predicts each label from the position before it."""
    return int((labels[:, 1:] if causal else labels).ne(-100).sum())


def global_batch_loss(loss: torch.Tensor, local_tokens: int, global_tokens: int,
                      processes: int) -> torch.Tensor:
    """Rescale this slice's mean token loss so that DDP's gradient average equals the gradient of
    the mean over the whole global batch: sum_r (P * sum_r / T) / P = sum / T, whatever the
    number of tokens per slice."""
    return loss * (local_tokens * processes / global_tokens)


def shard_model(model: torch.nn.Module, device: torch.device) -> None:
    """FSDP2: shard the rows of every parameter over all processes, one unit per transformer
    block (the classes a Hugging Face model names in ``_no_split_modules``) and one for the rest.

    Torch's own ``fully_shard`` rather than accelerate's plugin, which serves GPUs only: the same
    code then runs, and is tested, on CPUs over gloo. It replaces the parameters; build the
    optimizer and rebind the constraint afterwards.
    """
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(device.type, (torch.distributed.get_world_size(),))
    blocks = set(getattr(model, "_no_split_modules", None) or ())
    for module in list(model.modules())[1:]:
        if type(module).__name__ in blocks:
            fully_shard(module, mesh=mesh)
    fully_shard(model, mesh=mesh)


def _full_options():
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=True)


def gathered_state(model: torch.nn.Module, optimizer=None) -> tuple[dict, dict | None]:
    """Whole (unsharded, CPU) model and optimizer states of a sharded model; a collective call,
    the result is complete on the main process."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

    # a tied weight (BART's shared embedding) is saved once, under its first name
    aliases = ({name for name, _ in model.named_parameters(remove_duplicate=False)}
               - {name for name, _ in model.named_parameters()})
    state = {name: tensor for name, tensor in get_model_state_dict(model, options=_full_options()).items()
             if name not in aliases}
    return state, (get_optimizer_state_dict(model, optimizer, options=_full_options())
                   if optimizer is not None else None)


def scatter_state(model: torch.nn.Module, optimizer, model_state: dict, optimizer_state: dict) -> None:
    """Load whole states (as :func:`gathered_state` gives them) into a sharded model and its
    optimizer; every process passes the same states."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    options = StateDictOptions(full_state_dict=True)
    # the optimizer first: loading its state into a fresh optimizer runs one zero step, whose
    # step hooks (the constraint's re-anchoring) would round the weights just loaded
    set_optimizer_state_dict(model, optimizer, optimizer_state, options=options)
    set_model_state_dict(model, model_state, options=options)
