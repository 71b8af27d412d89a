"""What the cost benchmark's raw cases say: ratios to plain AdamW per size, method and fraction,
and the pass-by-pass comparison with peft's OSF. Pure arithmetic on the cases (no torch), so
the figures can use it without depending on the code that measured them.
"""

from __future__ import annotations

import statistics
from typing import Mapping, Sequence


def summarize(cases: Sequence[Mapping]) -> list[dict]:
    """One row per size, method and fraction: medians over the repeats, with their range.

    A step-time ratio is the case's own: per-step, to the plain twin that took its steps in
    turn with it (``step_ratio``; 1 for plain). A memory ratio is taken to plain fine-tuning of
    the same size in the same repeat.
    """
    plain = {(c["size"], c.get("repeat", 0)): c for c in cases if c["method"] == "plain"}
    grouped: dict[tuple, list[Mapping]] = {}
    for case in cases:
        grouped.setdefault((case["size"], case["method"], case["fraction_frozen"]), []).append(case)
    rows = []
    for (size, method, fraction), repeats in grouped.items():
        bases = [plain[size, case.get("repeat", 0)] for case in repeats]
        step = [c["step_ratio"] for c in repeats]
        memory = [c["peak_memory_mb"] / b["peak_memory_mb"] for c, b in zip(repeats, bases)]
        floors = [(c["median_step_seconds"] - statistics.median(c["twin_step_seconds"]))
                  / (c["flops_floor"] / (c["reference_gflops"] * 1e9))
                  for c in repeats if c["flops_floor"]]
        violations = [c["violation"] for c in repeats if c["violation"] is not None]
        rows.append({
            "size": size, "method": method, "fraction_frozen": fraction, "repeats": len(repeats),
            "violation": max(violations) if violations else None,
            "violation_steps": repeats[0]["violation_steps"],
            "median_step_seconds": statistics.median(c["median_step_seconds"] for c in repeats),
            "peak_memory_mb": statistics.median(c["peak_memory_mb"] for c in repeats),
            "peak_memory_mb_range": [min(c["peak_memory_mb"] for c in repeats),
                                     max(c["peak_memory_mb"] for c in repeats)],
            "step_ratio": statistics.median(step), "step_ratio_range": [min(step), max(step)],
            "memory_ratio": statistics.median(memory), "memory_ratio_range": [min(memory), max(memory)],
            "overhead_vs_floor": statistics.median(floors) if floors else None,
        })
    return rows


def against_peft(cases: Sequence[Mapping], share: float = 0.75) -> list[dict]:
    """Per size and fraction: asvd's step overhead (ratio to its plain twin - 1) and peak memory
    against peft's OSF, compared pass by pass, and whether each claim holds beyond 2
    standard deviations of the per-pass values: overhead share (ours / peft's) mean + 2 std at
    most ``share``, memory ratio (ours / peft's) mean + 2 std at most 1. Fewer than two passes
    give no spread and no verdict (None)."""
    by_pass = {(c["size"], c["method"], c["fraction_frozen"], c.get("repeat", 0)): c
               for c in cases}
    verdicts = []
    for size, method, fraction in dict.fromkeys(key[:3] for key in by_pass):
        if not method.startswith("asvd"):
            continue
        passes = sorted(r for *case, r in by_pass if tuple(case) == (size, method, fraction)
                        and (size, "peft_osf", fraction, r) in by_pass)
        if not passes:
            continue
        shares, memory = [], []
        for r in passes:
            ours, peft = by_pass[size, method, fraction, r], by_pass[size, "peft_osf", fraction, r]
            peft_overhead = peft["step_ratio"] - 1
            shares.append((ours["step_ratio"] - 1) / peft_overhead if peft_overhead > 0 else None)
            memory.append(ours["peak_memory_mb"] / peft["peak_memory_mb"])
        share_mean, share_std, faster = _upper_bound_holds(shares, share)
        memory_mean, memory_std, smaller = _upper_bound_holds(memory, 1.0)
        verdicts.append({
            "size": size, "method": method, "fraction_frozen": fraction, "passes": len(passes),
            "share_per_pass": shares, "share_mean": share_mean, "share_std": share_std,
            "faster_beyond_2sd": faster,
            "memory_ratio_per_pass": memory, "memory_ratio_mean": memory_mean,
            "memory_ratio_std": memory_std,
            "smaller_beyond_2sd": smaller,
        })
    return verdicts


def _upper_bound_holds(values: Sequence[float | None], bound: float
                       ) -> tuple[float | None, float | None, bool | None]:
    """Mean, sample std, and whether mean + 2 std <= bound; None for what cannot be told (a
    value missing, or a single value: no spread)."""
    if any(value is None for value in values) or len(values) < 2:
        return None, None, None
    mean, std = statistics.mean(values), statistics.stdev(values)
    return mean, std, mean + 2 * std <= bound
