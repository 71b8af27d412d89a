"""The constraint cost benchmark (asvd.cost.overhead): each case measures what it says it does."""

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from asvd.cost import overhead as benchmark

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "constraint_overhead.py"
TINY = dict(batch=2, source_length=8, target_length=4, steps=3, warmup=1)


def _case(method, fraction=0.5, **settings):
    """One case measured in this process, as run_suite joins its two measurements."""
    untimed = {key: value for key, value in settings.items() if key != "steps"}
    return {**benchmark.time_case("tiny", method, fraction, **settings),
            **benchmark.memory_case("tiny", method, fraction, **untimed)}


@pytest.fixture(scope="module")
def cases():
    return [_case(method, **TINY) for method in benchmark.METHODS]


def test_every_method_trains_the_same_matrices_and_ours_stays_exact(cases):
    by_method = {case["method"]: case for case in cases}
    assert by_method["plain"]["trained_parameters"] == by_method["asvd"]["trained_parameters"]
    # peft's count is of the matrices it wrapped: ours exactly, no cross-attention
    assert by_method["plain"]["targets"] == by_method["peft_osf"]["targets"] == 24
    # peft trains the low factors only: fewer parameters than the full matrices
    assert by_method["peft_osf"]["trained_parameters"] < by_method["plain"]["trained_parameters"]
    for method in ("asvd", "asvd_update"):
        assert by_method[method]["violation"] <= 1e-5
        assert by_method[method]["flops_floor"] > 0
    # the gradient form projects the gradient as well, without the anchor's k columns
    assert by_method["asvd_update"]["flops_floor"] < by_method["asvd"]["flops_floor"] \
        < 2 * by_method["asvd_update"]["flops_floor"]
    assert by_method["plain"]["violation"] is None
    # PEFT's factors leak under AdamW (no re-anchoring): measured, not assumed
    assert by_method["peft_osf"]["violation"] > by_method["asvd"]["violation"]
    for case in cases:
        assert len(case["step_seconds"]) == TINY["steps"]
        assert case["peak_memory_mb"] >= case["memory_at_start_mb"] > 0


def test_each_method_is_timed_step_by_step_beside_a_plain_twin(cases):
    for case in cases:
        assert case["violation_steps"] == TINY["warmup"] + TINY["steps"]
        if case["method"] == "plain":  # its own baseline: timed alone
            assert case["twin_step_seconds"] is None and case["step_ratio"] == 1.0
            continue
        twin = case["twin_step_seconds"]
        assert len(twin) == TINY["steps"]
        ratios = [ours / plain for ours, plain in zip(case["step_seconds"], twin)]
        assert case["step_ratio"] == pytest.approx(statistics.median(ratios))


def test_the_case_and_its_twin_take_their_steps_in_abba_order(monkeypatch):
    order = []
    monkeypatch.setattr(benchmark._Training, "step",
                        lambda self: order.append(self.method) or 1.0 + (self.method == "asvd"))
    case = benchmark.time_case("tiny", "asvd", 0.5, **dict(TINY, steps=4))
    assert order == ["asvd", "plain", "plain", "asvd", "asvd", "plain", "plain", "asvd",
                     "asvd", "plain"]  # one warm-up pair, then four timed ones
    assert case["step_seconds"] == [2.0] * 4 and case["twin_step_seconds"] == [1.0] * 4
    assert case["step_ratio"] == 2.0


def test_overhead_over_flops_is_ours_minus_the_twin_over_the_flop_time():
    case = {"size": "s", "method": "asvd", "fraction_frozen": 0.5, "repeat": 0,
            "median_step_seconds": 3.0, "twin_step_seconds": [1.0, 2.0, 9.0], "step_ratio": 1.5,
            "flops_floor": 4e9, "reference_gflops": 2.0, "peak_memory_mb": 900.0,
            "violation": 1e-6, "violation_steps": 4}
    plain = dict(case, method="plain", fraction_frozen=0.0, step_ratio=1.0, flops_floor=None,
                 twin_step_seconds=None, peak_memory_mb=800.0, violation=None)
    ours = next(row for row in benchmark.summarize([plain, case]) if row["method"] == "asvd")
    # (3 s - the twin's median 2 s) over 4 GFLOP at 2 GFLOP/s
    assert ours["overhead_vs_floor"] == pytest.approx(0.5)
    assert ours["memory_ratio"] == pytest.approx(900 / 800) and ours["step_ratio"] == 1.5


def test_the_twin_trains_what_plain_adamw_trains_alone():
    """Same seed, same weights, same batches: the twin's weights after the steps are those of a
    plain run on its own, so the ratio compares like with like."""
    import torch

    settings = dict(batch=2, source_length=8, target_length=4, seed=3, device=torch.device("cpu"),
                    dtype="float32")
    alone, twin = (benchmark._Training("tiny", "plain", 0.0, **settings) for _ in range(2))
    ours = benchmark._Training("tiny", "asvd", 0.5, **settings)
    for _ in range(2):
        alone.step(), ours.step(), twin.step()
    for a, b in zip(alone.model.parameters(), twin.model.parameters()):
        assert torch.equal(a, b)


def test_summary_ratios_are_the_cases_own_and_memory_is_to_plain(cases):
    rows = benchmark.summarize(cases)
    plain = next(row for row in rows if row["method"] == "plain")
    assert plain["step_ratio"] == plain["memory_ratio"] == 1.0
    ours = next(row for row in rows if row["method"] == "asvd")
    assert ours["step_ratio"] == cases[1]["step_ratio"]
    assert ours["memory_ratio"] == pytest.approx(cases[1]["peak_memory_mb"] / cases[0]["peak_memory_mb"])
    assert ours["overhead_vs_floor"] is not None and plain["overhead_vs_floor"] is None


def test_lowrank_svd_timing_reports_the_accuracy_of_the_frozen_basis():
    """Random weights have a flat spectrum: ten extra directions do not find the top half (the
    largest angle is near 90 degrees); a sketch of full width does (rounding only)."""
    row = benchmark.svd_timing("tiny", 0.5)
    assert row["targets"] == 24 and row["full_seconds"] > 0
    assert row["lowrank_max_sin_angle"] > 0.5 and row["lowrank_max_rel_sigma_error"] > 1e-3
    exact = benchmark.svd_timing("tiny", 0.5, oversample=10**6)
    assert exact["lowrank_max_sin_angle"] < 1e-2 and exact["lowrank_max_rel_sigma_error"] < 1e-4


def test_suite_repeats_every_case_in_alternating_order_and_writes_json_table_and_figure(tmp_path):
    sizes = {"tiny": dict(TINY, steps=2)}
    report = benchmark.run_suite(sizes, [0.8], tmp_path / "b.json",
                                 methods=["plain", "asvd", "peft_osf"], repeats=2)
    assert json.loads((tmp_path / "b.json").read_text())["summary"] == report["summary"]
    assert [(c["method"], c["repeat"]) for c in report["cases"]] == [
        ("plain", 0), ("asvd", 0), ("peft_osf", 0), ("peft_osf", 1), ("asvd", 1), ("plain", 1)]
    # memory alone in a process with glibc's mmap threshold fixed, time in another
    assert {c["malloc_mmap_threshold"] for c in report["cases"]} == {"65536"}
    ours = next(row for row in report["summary"] if row["method"] == "asvd")
    ratios = [report["cases"][i]["step_ratio"] for i in (1, 4)]
    assert ours["repeats"] == 2 and ours["step_ratio_range"] == [min(ratios), max(ratios)]
    [verdict] = report["against_peft"]
    peft = [report["cases"][i]["step_ratio"] for i in (2, 3)]
    # two timed steps of a tiny model: peft may by chance be no slower than its twin (no share)
    shares = [(ratio - 1) / (p - 1) if p > 1 else None for ratio, p in zip(ratios, peft)]
    assert verdict["passes"] == 2 and verdict["share_per_pass"] == pytest.approx(shares)
    assert verdict["faster_beyond_2sd"] == (
        None if None in shares else statistics.mean(shares) + 2 * statistics.stdev(shares) <= 0.75)
    benchmark.write_report(tmp_path / "b.json", tmp_path / "b.md", tmp_path / "b.png",
                           tmp_path / "b.pdf")
    table = (tmp_path / "b.md").read_text()
    assert "| tiny | asvd | 80% |" in table and "svd_lowrank" in table
    assert "mean + 2 std <= 0.75" in table
    assert (tmp_path / "b.png").stat().st_size > 10_000
    assert (tmp_path / "b.pdf").read_bytes().startswith(b"%PDF")
    # the script redraws an earlier run's table and figure without measuring anything
    subprocess.run([sys.executable, str(SCRIPT), "--from-json", str(tmp_path / "b.json"),
                    "--out-dir", str(tmp_path / "redrawn")], check=True)
    assert (tmp_path / "redrawn" / "constraint.md").read_text() == table
    assert (tmp_path / "redrawn" / "constraint_overhead.png").stat().st_size > 10_000


def test_the_script_names_a_missing_json_before_doing_anything(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), "--from-json", str(tmp_path / "no.json"),
                             "--out-dir", str(tmp_path / "out")], capture_output=True, text=True)
    assert result.returncode == 2 and "--from-json" in result.stderr and "no.json" in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_report_from_before_twin_timing_is_refused_by_name(tmp_path):
    old = {"cases": [{"size": "tiny", "method": "plain", "fraction_frozen": 0.0,
                      "median_step_seconds": 1.0, "peak_memory_mb": 400.0}]}
    (tmp_path / "old.json").write_text(json.dumps(old))
    result = subprocess.run([sys.executable, str(SCRIPT), "--from-json", str(tmp_path / "old.json"),
                             "--out-dir", str(tmp_path / "out")], capture_output=True, text=True)
    assert result.returncode == 2 and "old.json" in result.stderr and "step_ratio" in result.stderr
    assert not (tmp_path / "out").exists()


def _timed(method, ratios, memory, fraction=0.8):
    """Cases of one method over passes, with only the fields the comparison reads."""
    return [{"size": "s", "method": method, "fraction_frozen": 0.0 if method == "plain" else fraction,
             "repeat": r, "step_ratio": ratio, "peak_memory_mb": mb}
            for r, (ratio, mb) in enumerate(zip(ratios, memory))]


def test_a_claim_against_peft_is_judged_pass_by_pass_beyond_two_standard_deviations():
    # ours at its worst pass (1.25 x its twin) is slower than peft at its best (1.20 x), but per
    # pass ours costs 0.25 of peft's overhead
    ours = _timed("asvd", [1.05, 1.10, 1.25], [900, 905, 910])
    peft = _timed("peft_osf", [1.20, 1.40, 2.0], [1000, 1000, 1000])
    [clear] = benchmark.against_peft(ours + peft)
    assert clear["share_per_pass"] == pytest.approx([0.25, 0.25, 0.25])
    assert clear["faster_beyond_2sd"] is True and clear["smaller_beyond_2sd"] is True
    assert clear["memory_ratio_per_pass"] == pytest.approx([0.9, 0.905, 0.91])
    # the same first and last passes, but one in which ours costs as much as peft: not beyond 2 std
    noisy = _timed("asvd", [1.05, 1.40, 1.25], [900, 1020, 910])
    [unclear] = benchmark.against_peft(noisy + peft)
    assert unclear["share_mean"] == pytest.approx(0.5)
    assert unclear["faster_beyond_2sd"] is False and unclear["smaller_beyond_2sd"] is False


def test_the_verdict_is_mean_plus_two_sample_standard_deviations():
    # shares 0.35, 0.5, 0.65: mean + 1 std 0.65 and mean + 2 population std 0.745 would pass the
    # 0.75 bar; mean + 2 sample std is 0.80 and must not
    passes = _timed("peft_osf", [2.0, 2.0, 2.0], [1000] * 3) + _timed("asvd", [1.35, 1.5, 1.65], [900] * 3)
    [row] = benchmark.against_peft(passes)
    assert row["share_std"] == pytest.approx(0.15) and row["faster_beyond_2sd"] is False


def test_a_pass_where_peft_costs_nothing_gives_no_share_and_no_verdict():
    passes = _timed("peft_osf", [1.0, 1.5], [1000] * 2) + _timed("asvd", [1.1, 1.1], [900] * 2)
    [row] = benchmark.against_peft(passes)
    assert row["share_per_pass"] == [None, pytest.approx(0.2)] and row["faster_beyond_2sd"] is None
    assert row["smaller_beyond_2sd"] is True  # memory is still judged


def test_one_pass_gives_no_verdict_and_a_missing_partner_no_row():
    one = _timed("plain", [1.0], [800]) + _timed("asvd", [1.1], [900]) + _timed("peft_osf", [1.5], [1000])
    [row] = benchmark.against_peft(one)
    assert row["share_per_pass"] == pytest.approx([0.2]) and row["faster_beyond_2sd"] is None
    assert row["smaller_beyond_2sd"] is None
    assert benchmark.against_peft(_timed("plain", [1.0], [800]) + _timed("asvd", [1.1], [900])) == []


@pytest.mark.parametrize("sizes, methods, repeats, message", [
    ({"tiny": TINY}, ["plain", "nonsense"], 1, r"methods: \['nonsense'\]"),
    ({"huge": TINY}, ["plain"], 1, r"sizes: \['huge'\]"),
    ({"tiny": TINY}, ["asvd"], 1, "must include 'plain'"),
    ({"tiny": TINY}, ["plain"], 0, "repeats: 0"),
])
def test_bad_settings_are_rejected_before_any_case_runs(tmp_path, sizes, methods, repeats, message):
    with pytest.raises(ValueError, match=message):
        benchmark.run_suite(sizes, [0.5], tmp_path / "b.json", methods=methods, repeats=repeats)
    assert not (tmp_path / "b.json").exists()


def test_a_failing_case_reports_its_settings_and_error(tmp_path):
    with pytest.raises(RuntimeError, match=r"(?s)'dtype': 'float7'.*float7"):
        benchmark.run_suite({"tiny": TINY}, [0.5], tmp_path / "b.json", methods=["plain"],
                            dtype="float7")


def test_flop_floor_counts_the_form_the_constraint_chooses():
    from asvd.method.constraint import projection_flops

    shapes, frozen = {"square": (10, 10), "tall": (20, 10)}, {"square": 8, "tall": 3}
    # 80 % of the square frozen: both complements; 30 % of the tall one: the frozen bases
    update = projection_flops(10, 10, 8, True, True, True) + projection_flops(20, 10, 3, False, False, True)
    gradient = projection_flops(10, 10, 8, True, True, False) + projection_flops(20, 10, 3, False, False, False)
    assert benchmark.flop_floor(shapes, frozen, "asvd_update") == update
    assert benchmark.flop_floor(shapes, frozen, "asvd") == update + gradient
