"""Which weight matrices the method decomposes and constrains (torch only).

A target is a module whose name matches a pattern and that holds a 2-D ``weight``. The entry
``auto`` stands for the attention and feed-forward matrices of the model's family, the ones the
reference implementations decompose (embeddings, norms and the output head stay unconstrained).
The same rule selects from a live model and from a checkpoint's saved tensors, so the SVD stage
reads weights without building the model.
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

import torch

AUTO_TARGETS = {
    "t5": [r"SelfAttention\.(q|k|v|o)$", r"DenseReluDense\.(wi|wi_0|wi_1|wo)$"],
    "mt5": [r"SelfAttention\.(q|k|v|o)$", r"DenseReluDense\.(wi|wi_0|wi_1|wo)$"],
    "llama": [r"self_attn\.(q|k|v|o)_proj$", r"mlp\.(gate|up|down)_proj$"],
    "mistral": [r"self_attn\.(q|k|v|o)_proj$", r"mlp\.(gate|up|down)_proj$"],
    "qwen2": [r"self_attn\.(q|k|v|o)_proj$", r"mlp\.(gate|up|down)_proj$"],
    "bert": [r"attention\.self\.(query|key|value)$", r"attention\.output\.dense$",
             r"intermediate\.dense$", r"layer\.\d+\.output\.dense$"],
    "bart": [r"self_attn\.(q|k|v|out)_proj$", r"fc1$", r"fc2$"],
    "gpt2": [r"attn\.c_attn$", r"attn\.c_proj$", r"mlp\.c_fc$", r"mlp\.c_proj$"],
}


def family(config) -> str | None:
    """The model family whose ``auto`` patterns apply: a Hugging Face config object or its
    ``config.json`` as a dict; a warm-started encoder-decoder pair is named by its encoder."""
    get = config.get if isinstance(config, Mapping) else lambda key: getattr(config, key, None)
    model_type = get("model_type")
    if model_type == "encoder-decoder":
        return family(get("encoder"))
    return model_type


def target_patterns(model_family: str | None, targets: str | Sequence[str]) -> list[str]:
    """Module-name regexes for ``targets``; the entry ``auto`` expands to the family's."""
    patterns = []
    for entry in [targets] if isinstance(targets, str) else list(targets):
        if entry != "auto":
            patterns.append(entry)
            continue
        if model_family not in AUTO_TARGETS:
            raise ValueError(
                f"target_modules: 'auto' does not know model type {model_family!r}; "
                f"give module-name patterns (known: {sorted(AUTO_TARGETS)})"
            )
        patterns.extend(AUTO_TARGETS[model_family])
    return patterns


def select_weights(shapes: Mapping[str, Sequence[int]], model_family: str | None,
                   targets: str | Sequence[str] = "auto") -> list[str]:
    """The names in ``shapes`` (module name -> weight shape) that are targets, in the given
    order; shapes, not tensors, so a checkpoint's targets are chosen before any is read."""
    patterns = [_compiled(p) for p in target_patterns(model_family, targets)]
    found = [name for name, shape in shapes.items()
             if len(shape) == 2 and any(p.search(name) for p in patterns)]
    if not found:
        raise ValueError(f"target_modules: no 2-D weight matches {[p.pattern for p in patterns]}; "
                         f"this model's 2-D weights are {_general_names(shapes)}")
    return found


def _compiled(pattern: str) -> re.Pattern:
    try:
        return re.compile(pattern)
    except (re.error, TypeError) as err:
        raise ValueError(f"target_modules: {pattern!r} is not a regular expression ({err})") from None


def find_targets(model: torch.nn.Module, targets: str | Sequence[str] = "auto") -> dict[str, torch.nn.Module]:
    """Modules whose name matches a target pattern and that hold a 2-D ``weight``, in model order."""
    modules = {name: module for name, module in model.named_modules()
               if isinstance(getattr(module, "weight", None), torch.Tensor)}
    names = select_weights({name: module.weight.shape for name, module in modules.items()},
                           family(getattr(model, "config", None) or {}), targets)
    return {name: modules[name] for name in names}


def _general_names(shapes: Mapping[str, Sequence[int]], limit: int = 16) -> list[str]:
    """The distinct names of 2-D weights, layer numbers shown as N (for messages)."""
    names = []
    for name, shape in shapes.items():
        general = re.sub(r"\.\d+(?=\.|$)", ".N", name)
        if len(shape) == 2 and general not in names:
            names.append(general)
    return names[:limit] + (["..."] if len(names) > limit else [])
