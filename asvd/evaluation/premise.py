"""The method's premise, measured: where each task's inputs fall relative to the frozen subspace.

Under the two-sided constraint a target's update is dW = (I - U_h U_h^T) G (I - V_h V_h^T), so
dW x = dW (I - V_h V_h^T) x: an input that lies in the frozen right subspace V_h gets exactly the
output it had (docs/method.md §7). An earlier task is protected in as much as its inputs
put their energy into V_h; the new task learns through the energy its own inputs put outside.
For step t of a run this module measures, on a fixed sample of every task's test inputs run
through the checkpoint the step starts from (teacher-forced, every token):

- input share ||X V_h||^2 / ||X||^2 per target, X the target's inputs;
- output share ||Y U_h||^2 / ||Y||^2, Y = X W^T its outputs (bias excluded): the energy in the
  frozen left directions, which no update can reach.

Shares are averaged over targets (each counts once; a target with nothing frozen counts 0), per
block and overall. An unconstrained method (seqft) is measured against the subspace a reference
method's rule would have frozen at the same step, to compare the premise where nothing holds it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping, Sequence

import torch
from transformers.pytorch_utils import Conv1D

from asvd.data.prepare import load_records
from asvd.io import write_json
from asvd.method import ranks
from asvd.method.constraint import OrthogonalSubspace
from asvd.method.importance import forward_with_hooks
from asvd.method.targets import find_targets
from asvd.method_config import Method
from asvd.pipeline.runtime import compute_device
from asvd.train.loop import TrainSettings, sample_batches
from asvd.train.models import load_checkpoint
from asvd.train.pieces.constraint import build_constraint
from asvd.train_log import TaskLog

Bases = Mapping[str, tuple[torch.Tensor, torch.Tensor]]


def frozen_shares(model: torch.nn.Module, modules: Mapping[str, torch.nn.Module], bases: Bases,
                  batches: Iterable[Mapping[str, torch.Tensor]]) -> dict[str, dict[str, float]]:
    """Per target, the share of its input energy in V_h and of its output energy in U_h over
    every token of ``batches``; ``bases`` maps a target to its frozen ``(U_h, V_h)`` (a target
    without one has nothing frozen: shares 0). A ``torch.nn.Linear`` reads x through W^T
    (input side V); GPT-2's Conv1D stores W as (in, out) and reads x W (input side U)."""
    energy = {name: torch.zeros(4, dtype=torch.float64) for name in modules}

    def hook(name, module):
        U, V = bases.get(name, (None, None))
        if not isinstance(module, (torch.nn.Linear, Conv1D)):
            raise ValueError(f"premise: target {name!r} is a {type(module).__name__}, not a "
                             f"Linear or Conv1D layer whose input side is known")
        transposed = isinstance(module, Conv1D)
        weight = module.weight.float()

        def record(_module, args, _kwargs, _output):
            x = args[0].reshape(-1, args[0].shape[-1]).float()
            y = x @ (weight if transposed else weight.T)
            sums = [x.square().sum(), y.square().sum(), 0.0, 0.0]
            if U is not None:
                x_basis, y_basis = (U, V) if transposed else (V, U)
                sums[2:] = [(x @ x_basis).square().sum(), (y @ y_basis).square().sum()]
            energy[name] += torch.tensor([float(s) for s in sums], dtype=torch.float64)
        return record

    forward_with_hooks(model, {module: hook(name, module) for name, module in modules.items()},
                       batches)
    silent = [name for name, sums in energy.items() if sums[0] == 0]
    if silent:
        raise ValueError(f"premise: no input energy reached {silent[:3]} (never ran, or all zero)")
    return {name: {"input": float(e[2] / e[0]), "output": float(e[3] / e[1]) if e[1] > 0 else 0.0}
            for name, e in energy.items()}


def _mean_shares(shares: Sequence[Mapping[str, float]]) -> dict[str, float]:
    return {side: sum(s[side] for s in shares) / len(shares) for side in ("input", "output")}


def summarise_shares(per_target: Mapping[str, Mapping[str, float]]) -> dict:
    """Mean input and output share over all targets and per block (its outermost numbered
    module; targets outside any block form their own unit)."""
    blocks: dict[str, list] = {}
    for name, share in per_target.items():
        try:
            block = ranks.block_of(name)
        except ValueError:
            block = name
        blocks.setdefault(block, []).append(share)
    return {**_mean_shares(list(per_target.values())),
            "blocks": {block: _mean_shares(shares) for block, shares in blocks.items()}}


def _headline(steps: Sequence[Mapping]) -> dict[str, float | None]:
    """Mean shares from step 2 on: of every earlier task at every step, and of the new task."""
    def mean(values):
        return sum(values) / len(values) if values else None
    measured = [step for step in steps if step["index"] >= 2 and step["shares"]]
    out = {}
    for side in ("input", "output"):
        out[f"earlier_{side}_share"] = mean([share[side] for step in measured
                                             for task, share in step["shares"].items()
                                             if task != step["task"]])
        out[f"new_{side}_share"] = mean([step["shares"][step["task"]][side] for step in measured])
    return out


def _step_subspace(model, tokenizer, method: Method, stand_in: Method | None, step: int,
                   count: int, train_log: TaskLog | None, svd_path, importance_file,
                   settings: TrainSettings, seed: int) -> tuple[str | None, OrthogonalSubspace | None]:
    """The frozen subspace of step ``step``: the one the method trained under (its ranks read
    from the train log, so exactly that subspace), or for an unconstrained method the one
    ``stand_in``'s rule would have frozen (built as training builds it, with the stand-in's
    ``settings``); (None, None) where neither froze anything."""
    if method.constrained_on(step):
        rule = ranks.Fixed(ranks=train_log.frozen_ranks)
        return "frozen", OrthogonalSubspace(model, targets=method.target_modules, rank_rule=rule,
                                            projection=method.projection, svd=svd_path)
    if stand_in is None or not stand_in.constrained_on(step):
        return None, None
    modules = find_targets(model, stand_in.target_modules)
    return "would_freeze", build_constraint(model, tokenizer, stand_in, modules, step, count,
                                            svd_path, load_records(importance_file), settings,
                                            seed)


def measure_run(checkpoints: Sequence[str | Path], svd_caches: Sequence[str | Path],
                train_logs: Sequence[str | Path], tasks: Sequence[str],
                test_files: Mapping[str, str | Path], train_files: Mapping[str, str | Path],
                method: Mapping, settings: Mapping, samples: int, seed: int,
                out_json: str | Path, reference: Mapping | None = None,
                reference_name: str | None = None,
                reference_settings: Mapping | None = None) -> dict:
    """Measure the premise at every step of one sequential run and write ``out_json``.

    ``checkpoints[t - 1]`` and ``svd_caches[t - 1]`` are where step t starts (the base, then
    each earlier step), ``train_logs[t - 1]`` its log; ``tasks`` the order; ``test_files`` give
    the samples whose inputs are measured, ``train_files`` the previous task's samples an
    importance rule reads (as in training). ``reference`` is the config block of the method
    whose rule stands in for an unconstrained ``method``, ``reference_settings`` its train
    settings (its importance samples are encoded as its training encodes them); ``settings``
    encode the measured inputs.
    """
    own = Method.from_config(method)
    stand_in = (Method.from_config(reference, reference_name or "reference")
                if reference and not own.constrained else None)
    train_settings = TrainSettings.from_config(settings)
    stand_in_settings = TrainSettings.from_config(reference_settings or settings)
    device = compute_device()
    tests = {task: load_records(test_files[task]) for task in tasks}
    steps = []
    for index, task in enumerate(tasks, start=1):
        model, tokenizer = load_checkpoint(checkpoints[index - 1])
        model.to(device)
        previous = train_files[tasks[max(index - 2, 0)]]
        kind, constraint = _step_subspace(
            model, tokenizer, own, stand_in, index, len(tasks),
            TaskLog.read(train_logs[index - 1]) if own.constrained_on(index) else None,
            svd_caches[index - 1], previous, stand_in_settings, seed)
        shares = {}
        if constraint is not None:
            named = dict(model.named_modules())
            modules = {name: named[name] for name in constraint.shapes}
            bases = {name: (sub.U, sub.V) for name, sub in constraint.subspaces.items()}
            for seen in tasks[:index]:
                batches = sample_batches(model, tokenizer, tests[seen], train_settings, samples, seed)
                shares[seen] = summarise_shares(frozen_shares(model, modules, bases, batches))
        steps.append({"index": index, "task": task, "subspace": kind, "shares": shares})
        del model, constraint  # one checkpoint in memory at a time
    result = {"samples": samples, "subspace_of": reference_name if not own.constrained else "own",
              "steps": steps, **_headline(steps)}
    write_json(out_json, result)
    return result
