"""Layer importance for the adaptive rank rule, measured on samples of the previous task.

Two granularities (the rank rule's ``granularity``):

- ``block`` (default): the mean cosine similarity between a transformer block's input and output
  hidden states. Both live in the residual stream's basis, so a block that passes its input
  through (cosine near 1) changes little and what it holds matters for later layers: it keeps
  more of its directions (AdaSVD's layer importance). Every target of a block shares its score.
- ``matrix`` (ablation, the literal per-target form): the mean cosine between a target's input
  X and its linear output X W^T (bias excluded) over the first min(d_in, d_out) coordinates. The
  two sides are in unrelated bases, so on real models these cosines scatter around 0 and the
  normalised ratios span far outside [0, 1].

Samples run one at a time, unpadded, so padding never enters an average.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable, Mapping

import torch
import torch.nn.functional as F

from asvd.method.ranks import GRANULARITIES, block_of


def _hidden_input(args: tuple, kwargs: Mapping) -> torch.Tensor:
    """A block's input hidden states: its first positional argument or ``hidden_states=``."""
    return args[0] if args else kwargs["hidden_states"]


def _hidden_output(output) -> torch.Tensor:
    """A block's output hidden states (Hugging Face blocks return a tensor or a tuple)."""
    return output if isinstance(output, torch.Tensor) else output[0]


def _linear_output(module: torch.nn.Module, output: torch.Tensor) -> torch.Tensor:
    """X W^T of a target: its output without the bias (Linear and GPT-2's Conv1D alike)."""
    bias = getattr(module, "bias", None)
    return output if bias is None else output - bias


@torch.no_grad()
def forward_with_hooks(model: torch.nn.Module, hooks: Mapping[torch.nn.Module, Callable],
                       batches: Iterable[Mapping[str, torch.Tensor]]) -> None:
    """Run ``batches`` through ``model`` in eval mode without gradients, ``hooks[module]``
    called as ``hook(module, args, kwargs, output)`` after each forward of its module; the hooks
    are removed and the training mode restored afterwards, whatever happens."""
    handles = [module.register_forward_hook(hook, with_kwargs=True) for module, hook in hooks.items()]
    was_training = model.training
    model.eval()
    try:
        for batch in batches:
            model(**batch)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)


def _run_hooks(model: torch.nn.Module, hooked: Mapping[str, torch.nn.Module],
               pair: Callable, batches: Iterable[Mapping[str, torch.Tensor]]) -> dict[str, float]:
    """Mean over all tokens of ``batches`` of cos(x, y), where ``pair(module, args, kwargs,
    output)`` gives each hooked module's (x, y)."""
    sums = {name: 0.0 for name in hooked}
    counts = {name: 0 for name in hooked}

    def hook(name):
        def record(module, args, kwargs, output):
            x, y = pair(module, args, kwargs, output)
            width = min(x.shape[-1], y.shape[-1])
            cos = F.cosine_similarity(x[..., :width].float(), y[..., :width].float(), dim=-1)
            sums[name] += float(cos.sum())
            counts[name] += cos.numel()
        return record

    forward_with_hooks(model, {module: hook(name) for name, module in hooked.items()}, batches)
    empty = [name for name, count in counts.items() if count == 0]
    if empty:
        raise ValueError(f"importance: never ran on the samples: {empty[:3]}")
    return {name: sums[name] / counts[name] for name in hooked}


def importance_scores(model: torch.nn.Module, modules: Mapping[str, torch.nn.Module],
                      batches: Iterable[Mapping[str, torch.Tensor]],
                      granularity: str = "block") -> dict[str, float]:
    """Importance per unit (a block name, or a target name for ``matrix``) over ``batches``.

    Scores must be finite (NaN means broken activations, refused naming the block's targets);
    a zero or negative block score is legitimate and the rank rule gives that block mrr.
    """
    if granularity not in GRANULARITIES:
        raise ValueError(f"rank_rule.granularity: {granularity!r} not in {GRANULARITIES}")
    if granularity == "matrix":
        return _run_hooks(model, modules,
                          lambda module, args, kwargs, out: (_hidden_input(args, kwargs),
                                                             _linear_output(module, out)),
                          batches)
    members: dict[str, list[str]] = {}
    for name in modules:
        members.setdefault(block_of(name), []).append(name)
    named = dict(model.named_modules())
    scores = _run_hooks(model, {block: named[block] for block in members},
                        lambda module, args, kwargs, out: (_hidden_input(args, kwargs),
                                                           _hidden_output(out)),
                        batches)
    bad = {block: score for block, score in scores.items() if not math.isfinite(score)}
    if bad:
        raise ValueError("importance: block input/output cosine must be finite; "
                         + "; ".join(f"{block} = {score} (targets {members[block]})"
                                     for block, score in bad.items()))
    return scores
