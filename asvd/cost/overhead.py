"""Side-by-side cost of the constraint: plain AdamW vs asvd vs PEFT's OSF on random T5 models.

Every case (size x method x frozen fraction) measures its peak memory alone in a fresh process,
and its step time in another beside a plain-AdamW twin whose steps alternate with its own. All
three train exactly the target matrices (self-attention q/k/v/o and the feed-forward wi/wo of
every block); everything else is frozen, so the ratios isolate the constraint's cost.
Nothing is downloaded: the models are random-weight T5s of the published shapes.
"""

from __future__ import annotations

import json
import logging
import math
import os
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
# glibc's mmap threshold fixed at 64 KiB for the memory processes: every tensor beyond it is
# mapped on allocation and returned on free, so peak RSS does not depend on how the heap grew.
MEMORY_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536"}


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


def _constrained_matrices(model) -> int:
    """How many weight matrices peft's OSF wrapped in ``model``."""
    from peft.tuners.osf.layer import OSFLayer

    return sum(isinstance(module, OSFLayer) for module in model.modules())


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

    acts_on = "gradient" if method == "asvd" else "update"
    return sum(step_flops(m, n, frozen[name], complement_sides(m, n, frozen[name], "two_sided",
                                                                acts_on), acts_on)
               for name, (m, n) in shapes.items())


class _Training:
    """One case's model, AdamW and (for asvd) constraint on seeded random token batches, stepped
    one optimizer step at a time. Two of them built with the same seed see the same weights and
    the same batches."""

    def __init__(self, size: str, method: str, fraction: float, batch: int, source_length: int,
                 target_length: int, seed: int, device, dtype: str):
        import torch

        from asvd.method import ranks
        from asvd.method.constraint import OrthogonalSubspace
        from asvd.method.targets import find_targets

        self.method, self.device = method, device
        model = build_model(size, seed, dtype).to(device)
        targets = find_targets(model, "auto")
        for name, param in model.named_parameters():
            param.requires_grad_(name.rsplit(".", 1)[0] in targets)
        self.shapes = {name: tuple(m.weight.shape) for name, m in targets.items()}
        self.frozen = ranks.Uniform(unfreeze=1 - fraction).frozen_ranks(self.shapes)
        if method == "peft_osf":
            import peft

            # exactly our targets, by full name (a suffix such as "q" would also wrap the
            # cross-attention), at the same k: every T5 target's rank is d_model, so one number serves
            config = peft.OSFConfig(target_modules=list(targets),
                                    effective_rank=next(iter(self.frozen.values())))
            model = peft.get_peft_model(model, config)
        self.model = model
        self.parameters = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.parameters, lr=1e-4, weight_decay=0.01)
        self.constraint, self.setup_seconds = None, None
        if method in ("asvd", "asvd_update"):
            _sync(device)
            start = time.perf_counter()
            self.constraint = OrthogonalSubspace(
                model, "auto", ranks.Fixed(self.frozen),
                acts_on="update" if method == "asvd_update" else "gradient")
            _sync(device)
            self.setup_seconds = time.perf_counter() - start
            # the pipeline's placement: one batched projection between backward and the step
            self.constraint.wrap(self.optimizer, project_gradients=False)
        self.targets = _constrained_matrices(model) if method == "peft_osf" else len(targets)
        self.batch_shapes = (batch, source_length), (batch, target_length)
        self.generator = torch.Generator().manual_seed(seed)
        self.steps_taken = 0

    def step(self) -> float:
        """One forward, backward and optimizer step on a fresh batch; its seconds."""
        import torch

        vocab = self.model.config.vocab_size
        source, labels = (torch.randint(1, vocab, shape, generator=self.generator).to(self.device)
                          for shape in self.batch_shapes)
        _sync(self.device)
        start = time.perf_counter()
        self.model(input_ids=source, labels=labels).loss.backward()
        if self.constraint is not None and self.constraint.acts_on == "gradient":
            self.constraint.project_gradients()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        _sync(self.device)
        self.steps_taken += 1
        return time.perf_counter() - start

    def violation(self) -> float | None:
        """The frozen triplets' relative violation now (None for plain AdamW)."""
        if self.constraint is not None:
            return self.constraint.max_violation()
        return _peft_violation(self.model) if self.method == "peft_osf" else None


def time_case(size: str, method: str, fraction: float, batch: int, source_length: int,
              target_length: int, steps: int, warmup: int, seed: int = 0, device: str = "cpu",
              dtype: str = "float32") -> dict:
    """Step time of one case against a plain-AdamW twin trained in the same process.

    The twin sees the same weights and batches, and the two take their timed steps in turn
    (ABBA order), so a slow moment of a shared machine slows both: the per-step ratios cancel
    the drift that separate processes would put between a method and its baseline. Plain AdamW
    itself is timed alone (its ratio is 1 by definition)."""
    import torch

    _check_known([size], [method])
    device = torch.device(device)
    shape = dict(batch=batch, source_length=source_length, target_length=target_length,
                 seed=seed, device=device, dtype=dtype)
    ours = _Training(size, method, fraction, **shape)
    twin = _Training(size, "plain", 0.0, **shape) if method != "plain" else None
    times, twin_times = [], []
    runs = [(ours, times)] + ([] if twin is None else [(twin, twin_times)])
    for step in range(warmup + steps):
        for training, timed in runs[:: 1 if step % 2 == 0 else -1]:
            seconds = training.step()
            if step >= warmup:
                timed.append(seconds)
    ratios = [a / b for a, b in zip(times, twin_times)] if twin is not None else [1.0] * steps
    flops = flop_floor(ours.shapes, ours.frozen, method) if method.startswith("asvd") else None
    return {
        "size": size, "method": method, "fraction_frozen": fraction if method != "plain" else 0.0,
        "device": device.type, "dtype": dtype, "batch": batch, "source_length": source_length,
        "target_length": target_length, "steps": steps, "step_seconds": times,
        "median_step_seconds": statistics.median(times),
        "twin_step_seconds": twin_times or None,
        "step_ratio": statistics.median(ratios),
        "trained_parameters": sum(p.numel() for p in ours.parameters),
        "targets": ours.targets, "violation": ours.violation(), "violation_steps": ours.steps_taken,
        "constraint_setup_seconds": ours.setup_seconds, "flops_floor": flops,
        "reference_gflops": _reference_gflops(device, getattr(torch, dtype),
                                              SIZES[size]["d_model"]),
    }


def memory_case(size: str, method: str, fraction: float, batch: int, source_length: int,
                target_length: int, warmup: int, seed: int = 0, device: str = "cpu",
                dtype: str = "float32") -> dict:
    """Peak memory of one case alone in its process over ``warmup + 1`` steps (AdamW's state
    exists from the first). On the CPU this is the process's peak RSS; :func:`run_suite` runs it
    with glibc's mmap threshold fixed (:data:`MEMORY_ENV`), so that freed tensors leave the
    process and the peak follows the bytes the case holds rather than the heap's history
    (repeats then agree to the megabyte). On a GPU, ``torch.cuda.max_memory_allocated``."""
    import torch

    _check_known([size], [method])
    device = torch.device(device)
    start = _peak_memory_mb(device)
    training = _Training(size, method, fraction, batch, source_length, target_length, seed,
                         device, dtype)
    for _ in range(warmup + 1):
        training.step()
    return {"peak_memory_mb": _peak_memory_mb(device), "memory_at_start_mb": start,
            "malloc_mmap_threshold": os.environ.get("MALLOC_MMAP_THRESHOLD_")}


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


def _in_process(kind: str, kwargs: Mapping, env: Mapping[str, str] | None = None) -> dict:
    """Run :func:`time_case` or :func:`memory_case` in a fresh Python process; its result."""
    result = subprocess.run([sys.executable, "-m", "asvd.cost.overhead", kind, json.dumps(kwargs)],
                            capture_output=True, text=True, env={**os.environ, **(env or {})})
    if result.returncode != 0:
        raise RuntimeError(f"benchmark case {kwargs} failed ({kind}):\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_suite(sizes: Mapping[str, Mapping], fractions: Sequence[float], out_json: str | Path,
              seed: int = 0, device: str = "cpu", dtype: str = "float32",
              methods: Sequence[str] = METHODS, repeats: int = 3) -> dict:
    """Every case ``repeats`` times, the order reversed on every second pass (a drift of the
    machine then does not favour one method): its memory alone in a fresh process, its step
    time beside a plain twin in another (:func:`time_case`); then SVD timings. The JSON report
    is written atomically."""
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
        untimed = {key: value for key, value in kwargs.items() if key != "steps"}
        memory = _in_process("memory", untimed, MEMORY_ENV)
        cases.append({**_in_process("time", kwargs), **memory, "repeat": repeat})
        log.info("%s %s %.0f%% frozen (pass %d): median step %.3f s (%.3f x its plain twin), "
                 "peak memory %.0f MB, violation %s", size, method, 100 * fraction, repeat + 1,
                 cases[-1]["median_step_seconds"], cases[-1]["step_ratio"],
                 cases[-1]["peak_memory_mb"], cases[-1]["violation"])
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
    """The measurements as Markdown tables (docs/cost.md shows these from an actual run): medians
    over the repeats with their range in brackets (step ratios to each case's plain twin), then
    the pass-by-pass comparison with peft.
    Both are derived from the report's raw cases by this code, not read from stored summaries."""
    def spread(median, bounds, digits=2):
        return f"{median:.{digits}f} ({bounds[0]:.{digits}f}–{bounds[1]:.{digits}f})"

    def mean_std(mean, std, digits=2):
        return "–" if mean is None else f"{mean:.{digits}f} ± {std:.{digits}f}"

    def verdict(holds):
        return {True: "yes", False: "no", None: "–"}[holds]

    lines = ["| size | method | frozen | step s | step ratio to twin (range) | peak MB (range) "
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
    from asvd.cost.figure import plot_constraint_cost
    from asvd.io import read_json, write_text

    report = read_json(report_json)
    untwinned = [i for i, case in enumerate(report["cases"]) if "step_ratio" not in case]
    if untwinned:
        raise ValueError(f"{report_json}: cases {untwinned[:5]} have no step_ratio: the report "
                         f"predates timing beside a plain twin; measure it again")
    write_text(out_md, markdown_table(report))
    plot_constraint_cost(report_json, out_png, out_pdf)


def _versions() -> dict[str, str]:
    import peft
    import torch
    import transformers

    from asvd import __version__

    return {"asvd": __version__, "torch": torch.__version__, "peft": peft.__version__,
            "transformers": transformers.__version__,
            "threads": str(torch.get_num_threads())}


if __name__ == "__main__":  # one measurement of one case, run by run_suite in a fresh process
    measure = {"time": time_case, "memory": memory_case}[sys.argv[1]]
    print(json.dumps(measure(**json.loads(sys.argv[2]))))
