"""asvd.data.synthetic: the embedded benchmark generator (seeded, balanced, tasks that compete for
the same answers) and the general mixture's skills."""

import pytest

from asvd.data import prepare, synthetic
from conftest import STAGE_BENCHMARK


def test_generator_is_deterministic_and_balanced():
    spec = {k: v for k, v in STAGE_BENCHMARK.items() if k != "name"}
    a, b = synthetic.generate(seed=3, **spec), synthetic.generate(seed=3, **spec)
    assert a == b
    assert a != synthetic.generate(seed=4, **spec)
    targets = [ex["target"] for ex in a["tasks"]["alpha"]["train"]]
    assert targets.count("red") == targets.count("blue") == 32
    # the answer really is the class of the symbol at the task's position
    table_hits = {}
    for ex in a["tasks"]["beta"]["train"]:
        table_hits.setdefault(ex["text"].split()[-1], set()).add(ex["target"])
    assert all(len(classes) == 1 for classes in table_hits.values())


def test_private_task_symbols_are_disjoint_and_covered_by_the_general_mixture():
    spec = {k: v for k, v in STAGE_BENCHMARK.items() if k != "name"}
    out = synthetic.generate(seed=0, **{**spec, "task_symbols": 4})
    used = {task: {s for ex in splits["train"] for s in ex["text"].split()}
            for task, splits in out["tasks"].items()}
    assert used["alpha"].isdisjoint(used["beta"])
    general = {s for ex in out["general"]["train"] for s in ex["text"].split()}
    assert used["alpha"] | used["beta"] <= general


def test_instructed_general_skill_asks_the_general_table_in_the_tasks_words():
    benchmark = {**STAGE_BENCHMARK, "general_skills": ["copy", "instructed"]}
    general = prepare.synthetic_records(benchmark, prepare.GENERAL, "seed", 0)["train"]
    alpha = prepare.synthetic_records(benchmark, "alpha", "seed", 0)["train"][0]
    instructed = [r for r in general if r["skill"] == "instructed"]
    assert len(instructed) == len(general) // 2 and {r["skill"] for r in general} == {"copy", "instructed"}
    lead = "Task general : what is the class of the "
    assert all(r["input"].startswith(lead) for r in instructed)
    # the same prompt as a task's, up to the task's name and position; answered by one table
    def options(record):
        return record["input"].split("symbol ?")[1].split("]")[0]

    assert options(alpha) == options(instructed[0])
    table = {}
    for record in instructed:
        position = record["input"][len(lead):].split()[0]
        symbol = record["input"].split(". ")[-1].split()[synthetic.POSITIONS[position]]
        table.setdefault(symbol, set()).add(record["target"])
    assert len(table) == STAGE_BENCHMARK["symbols"] and all(len(classes) == 1 for classes in table.values())
    assert {r["input"][len(lead):].split()[0] for r in instructed} == set(synthetic.POSITIONS)
    default = prepare.synthetic_records(STAGE_BENCHMARK, prepare.GENERAL, "seed", 0)["train"]
    assert default[0]["skill"] == "copy"
    spec = {k: v for k, v in STAGE_BENCHMARK.items() if k != "name"}
    for bad in (["copy", "copy"], ["telepathy"], []):
        with pytest.raises(ValueError, match="benchmark.general_skills"):
            synthetic.generate(seed=0, **{**spec, "general_skills": bad})


def test_tasks_compete_for_the_same_outputs():
    spec = {k: v for k, v in STAGE_BENCHMARK.items() if k != "name"}
    tasks = synthetic.generate(seed=0, **spec)["tasks"]
    assert {ex["target"] for ex in tasks["alpha"]["test"]} == {ex["target"] for ex in tasks["beta"]["test"]}
