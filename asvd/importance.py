"""Layer importance for the adaptive rank rule: input/output cosine similarity of each target.

For a target with token inputs X and outputs Y = X W^T, the importance is the mean cosine
similarity between each token's input and output vectors, using the first min(d_in, d_out)
coordinates when the dimensions differ (METHOD.md s3.1). Samples run one at a time so padding
never enters the average.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import torch
import torch.nn.functional as F


@torch.no_grad()
def importance_scores(model: torch.nn.Module, modules: Mapping[str, torch.nn.Module],
                      batches: Iterable[Mapping[str, torch.Tensor]]) -> dict[str, float]:
    """Mean input/output cosine similarity per target over all tokens of ``batches``."""
    sums = {name: 0.0 for name in modules}
    counts = {name: 0 for name in modules}

    def hook(name):
        def record(_module, inputs, output):
            x, y = inputs[0], output
            width = min(x.shape[-1], y.shape[-1])
            cos = F.cosine_similarity(x[..., :width].float(), y[..., :width].float(), dim=-1)
            sums[name] += float(cos.sum())
            counts[name] += cos.numel()
        return record

    handles = [module.register_forward_hook(hook(name)) for name, module in modules.items()]
    was_training = model.training
    model.eval()
    try:
        for batch in batches:
            model(**batch)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    empty = [name for name, count in counts.items() if count == 0]
    if empty:
        raise ValueError(f"importance: targets never ran on the samples: {empty[:3]}")
    return {name: sums[name] / counts[name] for name in modules}
