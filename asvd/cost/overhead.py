"""Side-by-side cost of the constraint: plain AdamW vs asvd vs PEFT's OSF on random T5 models.

Every case (size x method x frozen fraction) runs in its own process so that its peak memory is
its own. All three train exactly the target matrices (attention q/k/v/o and the feed-forward
wi/wo of every block); everything else is frozen, so the ratios isolate the constraint's cost.
Nothing is downloaded: the models are random-weight T5s of the published shapes.
"""

from __future__ import annotations

import json
import logging
import math
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Mapping, Sequence

from asvd.cost.comparison import against_peft, summarize
from asvd.io import write_json

log = logging.getLogger(__name__)

# T5 v1.0 shapes (d_model, d_ff, layers per stack, heads); "tiny" is a toy of the same family.
SIZES = {
    "tiny": dict(d_model=128, d_ff=512, num_layers=2, num_heads=4, vocab_size=1024),
    "t5-small": dict(d_model=512, d_ff=2048, num_layers=6, num_heads=8, vocab_size=32128),
    "t5-base": dict(d_model=768, d_ff=3072, num_layers=12, num_heads=12, vocab_size=32128),
}
METHODS = ("plain", "asvd", "asvd_update", "peft_osf")


def build_model(size: str, seed: int, dtype: str = "float32"):
    """A random-weight ``T5ForConditionalGeneration`` of a named shape, seeded."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    shape = SIZES[size]
    torch.manual_seed(seed)
    config = T5Config(d_kv=shape["d_model"] // shape["num_heads"], dropout_rate=0.0,
                      decoder_start_token_id=0, pad_token_id=0, **shape)
    return T5ForConditionalGeneration(config).to(getattr(torch, dtype))


def _peak_memory_mb(device) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _reference_gflops(device, dtype, d: int) -> float:
    """Achieved matmul throughput on this machine now, to turn the flop floor into seconds."""
    import torch

    a = torch.randn(8, d, d, device=device, dtype=dtype)
    b = torch.randn(8, d, d // 2, device=device, dtype=dtype)
    torch.bmm(a, b)
    times = []
    for _ in range(5):
        _sync(device)
        start = time.perf_counter()
        torch.bmm(a, b)
        _sync(device)
        times.append(time.perf_counter() - start)
    return 2 * 8 * d * d * (d // 2) / statistics.median(times) / 1e9


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peft_violation(model) -> float:
    """Relative violation of the frozen triplets by PEFT OSF's effective weights W + delta."""
    import torch
    from peft.tuners.osf.layer import OSFLayer

    from asvd.method.constraint import FrozenSubspace

    worst = 0.0
    for module in model.modules():
        if not isinstance(module, OSFLayer):
            continue
        base = module.get_base_layer().weight.detach().float()
        U, S, Vh = torch.linalg.svd(base, full_matrices=False)
        k = module.effective_rank["default"]
        effective = base + module.get_delta_weight("default").detach().float()
        sub = FrozenSubspace(torch.nn.Parameter(effective), U[:, :k], S[:k], Vh[:k].T)
        worst = max(worst, sub.violation("two_sided"))
    return worst


def _check_known(sizes: Sequence[str], methods: Sequence[str]) -> None:
    """Reject unknown sizes and methods before any work, naming the config key."""
    for key, given, known in (("sizes", sizes, SIZES), ("methods", methods, METHODS)):
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise ValueError(f"constraint_cost.{key}: {unknown} not in {sorted(known)}")


def flop_floor(shapes: Mapping[str, tuple[int, int]], frozen: Mapping[str, int], method: str) -> int:
    """Flops per step of the projections the constraint runs, in the form it chooses per target
    (:func:`asvd.method.constraint.complement_sides`): ``asvd`` projects the gradient and
    re-anchors, ``asvd_update`` only re-anchors."""
    from asvd.method.constraint import complement_sides, step_flops

    project = "gradient" if method == "asvd" else "update"
    return sum(step_flops(m, n, frozen[name], complement_sides(m, n, frozen[name], "two_sided",
                                                                project), project)
               for name, (m, n) in shapes.items())


def run_case(size: str, method: str, fraction: float, batch: int, source_length: int,
             target_length: int, steps: int, warmup: int, seed: int = 0, device: str = "cpu",
             dtype: str = "float32") -> dict:
    """Train ``warmup + steps`` AdamW steps of one case; time, memory and violation."""
    import torch

    from asvd.method import ranks
    from asvd.method.constraint import OrthogonalSubspace
    from asvd.method.targets import find_targets

    _check_known([size], [method])
    device = torch.device(device)
    rss_start = _peak_memory_mb(device)
    model = build_model(size, seed, dtype).to(device)
    targets = find_targets(model, "auto")
    for name, param in model.named_parameters():
        param.requires_grad_(name.rsplit(".", 1)[0] in targets)
    shapes = {name: tuple(m.weight.shape) for name, m in targets.items()}
    frozen = ranks.Uniform(unfreeze=1 - fraction).frozen_ranks(shapes)
    constraint = None
    if method == "peft_osf":
        import peft

        # the same k per target as ours: every T5 target's rank is d_model, so one number serves
        config = peft.OSFConfig(target_modules=["q", "k", "v", "o", "wi", "wo"],
                                effective_rank=next(iter(frozen.values())))
        model = peft.get_peft_model(model, config)
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=1e-4, weight_decay=0.01)
    svd_seconds = None
    if method in ("asvd", "asvd_update"):
        _sync(device)
        start = time.perf_counter()
        constraint = OrthogonalSubspace(model, "auto", ranks.Fixed(frozen),
                                        project="update" if method == "asvd_update" else "gradient")
        _sync(device)
        svd_seconds = time.perf_counter() - start
        constraint.wrap(optimizer)
    generator = torch.Generator().manual_seed(seed)
    vocab = model.config.vocab_size
    times = []
    for step in range(warmup + steps):
        source = torch.randint(1, vocab, (batch, source_length), generator=generator).to(device)
        labels = torch.randint(1, vocab, (batch, target_length), generator=generator).to(device)
        _sync(device)
        start = time.perf_counter()
        model(input_ids=source, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        _sync(device)
        if step >= warmup:
            times.append(time.perf_counter() - start)
    peak_memory = _peak_memory_mb(device)  # before the checks below allocate anything
    if constraint is not None:
        violation = constraint.max_violation()
    elif method == "peft_osf":
        violation = _peft_violation(model)
    else:
        violation = None
    flops_floor = flop_floor(shapes, frozen, method) if method.startswith("asvd") else None
    return {
        "size": size, "method": method, "fraction_frozen": fraction if method != "plain" else 0.0,
        "device": device.type, "dtype": dtype, "batch": batch, "source_length": source_length,
        "target_length": target_length, "steps": steps, "step_seconds": times,
        "median_step_seconds": statistics.median(times),
        "peak_memory_mb": peak_memory,
        "memory_at_start_mb": rss_start,
        "trained_parameters": sum(p.numel() for p in parameters),
        "targets": len(targets), "violation": violation, "violation_steps": warmup + steps,
        "constraint_setup_seconds": svd_seconds, "flops_floor": flops_floor,
        "reference_gflops": _reference_gflops(device, getattr(torch, dtype),
                                              SIZES[size]["d_model"]),
    }


def svd_timing(size: str, fraction: float, seed: int = 0, oversample: int = 10,
               niter: int = 2) -> dict:
    """Per-task SVD of all targets: full ``torch.linalg.svd`` vs ``torch.svd_lowrank`` for top-k.

    The accuracy of the randomized basis is the sine of the largest principal angle between its
    top-k left vectors and the exact ones (0 = the same subspace), worst target.
    """
    import torch

    from asvd.method.svd import thin_svd
    from asvd.method.targets import find_targets

    weights = [m.weight.detach() for m in find_targets(build_model(size, seed), "auto").values()]
    start = time.perf_counter()
    exact = [thin_svd(weight) for weight in weights]
    full_seconds = time.perf_counter() - start
    torch.manual_seed(seed)
    start = time.perf_counter()
    ks = [math.floor(round(fraction * min(weight.shape), 9)) for weight in weights]
    approx = [torch.svd_lowrank(weight, q=min(k + oversample, min(weight.shape)), niter=niter)
              for weight, k in zip(weights, ks)]
    lowrank_seconds = time.perf_counter() - start
    worst_angle, worst_value = 0.0, 0.0
    for (U, S, _), (Ua, Sa, _), k in zip(exact, approx, ks):
        U, Ua = U[:, :k], Ua[:, :k]
        worst_angle = max(worst_angle, float(torch.linalg.matrix_norm(Ua - U @ (U.T @ Ua), ord=2)))
        worst_value = max(worst_value, float(((Sa[:k] - S[:k]).abs() / S[:k]).max()))
    return {"size": size, "fraction_frozen": fraction, "targets": len(weights),
            "full_seconds": full_seconds, "lowrank_seconds": lowrank_seconds,
            "lowrank_oversample": oversample, "lowrank_niter": niter,
            "lowrank_max_sin_angle": worst_angle, "lowrank_max_rel_sigma_error": worst_value}


def run_suite(sizes: Mapping[str, Mapping], fractions: Sequence[float], out_json: str | Path,
              seed: int = 0, device: str = "cpu", dtype: str = "float32",
              methods: Sequence[str] = METHODS, repeats: int = 3) -> dict:
    """Every case ``repeats`` times, each in a fresh process, the order reversed on every second
    pass (a drift of the machine then does not favour one method); then SVD timings. The JSON
    report is written atomically."""
    from tqdm.auto import tqdm

    _check_known(sizes, methods)
    if "plain" not in methods:
        raise ValueError("constraint_cost.methods: must include 'plain' (every ratio is to it)")
    if repeats < 1:
        raise ValueError(f"constraint_cost.repeats: {repeats} (expected >= 1)")
    plan = []
    for size in sizes:
        plan.append((size, "plain", 0.0))
        plan += [(size, method, fraction) for fraction in fractions for method in methods
                 if method != "plain"]
    passes = [(repeat, case) for repeat in range(repeats)
              for case in (plan if repeat % 2 == 0 else plan[::-1])]
    cases = []
    for repeat, (size, method, fraction) in tqdm(passes, desc="benchmark cases"):
        kwargs = dict(size=size, method=method, fraction=fraction, seed=seed, device=device,
                      dtype=dtype, **sizes[size])
        result = subprocess.run([sys.executable, "-m", "asvd.cost.overhead", json.dumps(kwargs)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"benchmark case {kwargs} failed:\n{result.stderr[-4000:]}")
        cases.append({**json.loads(result.stdout.strip().splitlines()[-1]), "repeat": repeat})
        log.info("%s %s %.0f%% frozen (pass %d): median step %.3f s, peak memory %.0f MB, "
                 "violation %s", size, method, 100 * fraction, repeat + 1,
                 cases[-1]["median_step_seconds"], cases[-1]["peak_memory_mb"],
                 cases[-1]["violation"])
    summary = summarize(cases)
    report = {
        "cases": cases,
        "summary": summary,
        "against_peft": against_peft(cases),
        "svd": [svd_timing(size, fraction, seed) for size in sizes for fraction in fractions],
        "versions": _versions(),
    }
    write_json(out_json, report)
    return report


def markdown_table(report: Mapping) -> str:
    """The measurements as Markdown tables (the README shows these from an actual run): medians
    over the repeats with their range in brackets, then the pass-by-pass comparison with peft.
    Both are derived from the report's raw cases by this code, not read from stored summaries."""
    def spread(median, bounds, digits=2):
        return f"{median:.{digits}f} ({bounds[0]:.{digits}f}–{bounds[1]:.{digits}f})"

    def mean_std(mean, std, digits=2):
        return "–" if mean is None else f"{mean:.{digits}f} ± {std:.{digits}f}"

    def verdict(holds):
        return {True: "yes", False: "no", None: "–"}[holds]

    lines = ["| size | method | frozen | step s | step ratio (range) | peak MB (range) "
             "| memory ratio | overhead / flops | violation (steps) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in summarize(report["cases"]):
        floor = row["overhead_vs_floor"]
        violation = "–" if row["violation"] is None else f"{row['violation']:.1e} ({row['violation_steps']})"
        lines.append(
            f"| {row['size']} | {row['method']} | {row['fraction_frozen']:.0%} "
            f"| {row['median_step_seconds']:.3f} | {spread(row['step_ratio'], row['step_ratio_range'])} "
            f"| {spread(row['peak_memory_mb'], row['peak_memory_mb_range'], 0)} "
            f"| {row['memory_ratio']:.2f} "
            f"| {'–' if floor is None else f'{floor:.2f}'} | {violation} |")
    comparison = against_peft(report["cases"])
    if comparison:
        lines += ["", "| size | method | frozen | overhead share (ours / peft's) per pass "
                  "| mean ± std | mean + 2 std <= 0.75 | peak MB ratio (ours / peft's) per pass "
                  "| mean ± std | mean + 2 std <= 1 |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for row in comparison:
            shares = ", ".join("–" if v is None else f"{v:.2f}" for v in row["share_per_pass"])
            memory = ", ".join(f"{v:.3f}" for v in row["memory_ratio_per_pass"])
            lines.append(
                f"| {row['size']} | {row['method']} | {row['fraction_frozen']:.0%} | {shares} "
                f"| {mean_std(row['share_mean'], row['share_std'])} "
                f"| {verdict(row['faster_beyond_2sd'])} | {memory} "
                f"| {mean_std(row['memory_ratio_mean'], row['memory_ratio_std'], 3)} "
                f"| {verdict(row['smaller_beyond_2sd'])} |")
    lines += ["", "| size | frozen | full SVD s | svd_lowrank s | lowrank max sin(angle) "
              "| lowrank max rel. sigma error |", "|---|---|---|---|---|---|"]
    for row in report["svd"]:
        lines.append(f"| {row['size']} | {row['fraction_frozen']:.0%} | {row['full_seconds']:.2f} "
                     f"| {row['lowrank_seconds']:.2f} | {row['lowrank_max_sin_angle']:.2e} "
                     f"| {row['lowrank_max_rel_sigma_error']:.2e} |")
    return "\n".join(lines) + "\n"


def write_report(report_json: str | Path, out_md: str | Path, out_png: str | Path,
                 out_pdf: str | Path) -> None:
    """The Markdown table and the overhead-vs-size figure of a finished benchmark."""
    from asvd.analysis.figures import plot_constraint_cost
    from asvd.io import read_json, write_text

    write_text(out_md, markdown_table(read_json(report_json)))
    plot_constraint_cost(report_json, out_png, out_pdf)


def _versions() -> dict[str, str]:
    import peft
    import torch
    import transformers

    from asvd import __version__

    return {"asvd": __version__, "torch": torch.__version__, "peft": peft.__version__,
            "transformers": transformers.__version__,
            "threads": str(torch.get_num_threads())}


if __name__ == "__main__":  # one case, run by run_suite in a fresh process
    print(json.dumps(run_case(**json.loads(sys.argv[1]))))
