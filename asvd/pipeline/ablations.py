"""Ablations as methods: the paper's retention ablation (one importance-rule method with its
target retention ratio (trr) and granularity swept, target ``all_ablations``) and the
learning-retention trade-off (methods at multiples of their tuned learning rate, target
``all_tradeoff``). Each variant is an ordinary method config, so the workflow trains, evaluates
and tabulates it like any other.
"""

from __future__ import annotations

import re
from typing import Mapping

from asvd.method import ranks


def variant_name(method: str, trr: float, granularity: str) -> str:
    """``asvd_trr065_matrix``: the method, trr in hundredths, the granularity."""
    return f"{method}_trr{round(trr * 100):03d}_{granularity}"


LR_VARIANT = re.compile(r"^(?P<method>.+)_lrx(?P<scale>\d+(?:p\d+)?)$")


def lr_variant_name(method: str, scale: float) -> str:
    """``asvd_lrx2``, ``seqft_lrx0p5``: the method and its learning-rate factor."""
    return f"{method}_lrx{scale:g}".replace(".", "p")


def lr_variant_of(name: str) -> tuple[str, float] | None:
    """(method, factor) of a learning-rate variant's name; None for any other method."""
    found = LR_VARIANT.match(name)
    return (found["method"], float(found["scale"].replace("p", "."))) if found else None


def lr_variants(methods: Mapping[str, Mapping], spec: Mapping) -> dict[str, dict]:
    """Method configs for every method and factor of ``spec`` (config block ``tradeoff``): the
    method at ``lr_scale`` times its (tuned) learning rate; a variant is tuned as its method."""
    variants = {}
    for method in spec["methods"]:
        if method not in methods:
            raise ValueError(f"tradeoff.methods: {method!r} has no entry under methods")
        for scale in spec["lr_scales"]:
            name = lr_variant_name(method, scale)
            if scale == 1 or lr_variant_of(name) != (method, scale):
                raise ValueError(f"tradeoff.lr_scales: {scale} (a factor other than 1, written "
                                 f"as a plain decimal such as 0.5 or 4)")
            if name in methods:
                raise ValueError(f"tradeoff: variant name {name!r} is already a method")
            variants[name] = {**methods[method], "lr_scale": scale}
    return variants


def trr_may_be_tuned(methods: Mapping[str, Mapping], spec: Mapping, tuning: Mapping | None) -> bool:
    """Whether tuning may move the swept method's own trr (config blocks ``ablations`` and
    ``tuning``): then its declared point is a variant of its own, not the method itself."""
    from asvd.train.choice import candidates

    swept = spec["method"]
    rule = (methods.get(swept) or {}).get("rank_rule") or {}
    return (bool(tuning) and swept in tuning["methods"] and rule.get("name") == "importance"
            and any(point["trr"] not in (None, rule.get("trr"))
                    for point in candidates(methods[swept], tuning["grid"])))


def retention_variants(methods: Mapping[str, Mapping], spec: Mapping,
                       keep_own_name: bool = True) -> dict[str, dict]:
    """Method configs for every (trr, granularity) of ``spec`` (config block ``ablations``).

    The variant equal to the swept method itself keeps that method's name, so it is run once;
    not with ``keep_own_name`` false (tuning may move the method's own trr, so its declared
    point needs a run of its own). Problems are named by key before any job exists.
    """
    name = spec["method"]
    for key, method in [("method", name)] + [("references", ref) for ref in spec["references"]]:
        if method not in methods:
            raise ValueError(f"ablations.{key}: {method!r} has no entry under methods")
    base = methods[name]
    rule = base.get("rank_rule") or {}
    if rule.get("name") != "importance":
        raise ValueError(f"ablations.method: {name!r} does not use the importance rank rule "
                         f"(its rank_rule is {rule or None})")
    variants = {}
    for trr in spec["trr"]:
        for granularity in spec["granularity"]:
            swept = {**rule, "trr": trr, "granularity": granularity}
            try:
                ranks.from_config(swept, task=2, tasks=2)
            except ValueError as err:
                raise ValueError(f"ablations.trr: {trr} with methods.{name}.rank_rule: {err}") from err
            same = keep_own_name and trr == rule.get("trr", ranks.Importance.trr) and \
                granularity == rule.get("granularity", ranks.Importance.granularity)
            variant = name if same else variant_name(name, trr, granularity)
            if not same and variant in methods:
                raise ValueError(f"ablations: variant name {variant!r} is already a method")
            variants[variant] = {**base, "rank_rule": swept}
    return variants
