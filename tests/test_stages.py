"""Each stage called directly (no Snakemake) on data the tests make themselves."""

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSeq2SeqLM

from asvd.data import prepare, synthetic
from asvd.data.prepare import load_records
from asvd.evaluation import evaluate, ranking, scoring
from asvd.io import read_json, write_jsonl
from asvd.method import svd
from asvd.method.targets import find_targets
from asvd.train.base import train_base_model
from asvd.train.finetune import TaskInputs, TaskPosition, finetune_task
from asvd.train.models import load_checkpoint

BENCHMARK = {
    "name": "synthetic",
    "symbols": 8,
    "classes": ["red", "blue"],
    "length": 4,
    "tasks": [{"name": "alpha", "position": "first"}, {"name": "beta", "position": "last"}],
    "train_per_task": 64,
    "test_per_task": 16,
    "general_train": 96,
    "general_test": 16,
}
ARCHITECTURE = {
    "d_model": 16, "encoder_layers": 1, "decoder_layers": 1, "encoder_attention_heads": 2,
    "decoder_attention_heads": 2, "encoder_ffn_dim": 32, "decoder_ffn_dim": 32,
    "max_position_embeddings": 32, "dropout": 0.0, "attention_dropout": 0.0, "activation_dropout": 0.0,
}
TRAIN = {"epochs": 2, "batch_size": 16, "lr": 3e-3, "weight_decay": 0.1}
ASVD = {"rank_rule": {"name": "importance", "mrr": 0.1, "trr": 0.8, "samples": 8},
        "projection": "two_sided", "target_modules": "auto", "train_other_params": True}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("stages")
    files = {}
    for task in ["alpha", "beta", prepare.GENERAL]:
        files[task] = {split: root / "data" / task / f"{split}.jsonl" for split in ("train", "test")}
        prepare.prepare_task(BENCHMARK, task, "seed", 0, files[task]["train"], files[task]["test"])
    vocabulary = [path for splits in files.values() for path in splits.values()]
    train_base_model(files[prepare.GENERAL]["train"], vocabulary, "bart", ARCHITECTURE,
                     {"epochs": 1, "batch_size": 32, "lr": 1e-3}, 0, root / "base" / "model",
                     root / "base" / "train_log.json")
    return root, files


def test_generator_is_deterministic_and_balanced():
    spec = {k: v for k, v in BENCHMARK.items() if k != "name"}
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
    spec = {k: v for k, v in BENCHMARK.items() if k != "name"}
    out = synthetic.generate(seed=0, **{**spec, "task_symbols": 4})
    used = {task: {s for ex in splits["train"] for s in ex["text"].split()}
            for task, splits in out["tasks"].items()}
    assert used["alpha"].isdisjoint(used["beta"])
    general = {s for ex in out["general"]["train"] for s in ex["text"].split()}
    assert used["alpha"] | used["beta"] <= general


def test_instructed_general_skill_asks_the_general_table_in_the_tasks_words():
    benchmark = {**BENCHMARK, "general_skills": ["copy", "instructed"]}
    general = prepare.synthetic_records(benchmark, prepare.GENERAL, "seed", 0)["train"]
    alpha = prepare.synthetic_records(benchmark, "alpha", "seed", 0)["train"][0]
    instructed = [r for r in general if r["skill"] == "instructed"]
    assert len(instructed) == len(general) // 2 and {r["skill"] for r in general} == {"copy", "instructed"}
    lead = "Task general : what is the class of the "
    assert all(r["input"].startswith(lead) for r in instructed)
    # the same prompt as a task's, up to the task's name and position; answered by one table
    assert alpha["input"].split("symbol ?")[1].split("]")[0] == instructed[0]["input"].split("symbol ?")[1].split("]")[0]
    table = {}
    for record in instructed:
        position = record["input"][len(lead):].split()[0]
        symbol = record["input"].split(". ")[-1].split()[synthetic.POSITIONS[position]]
        table.setdefault(symbol, set()).add(record["target"])
    assert len(table) == BENCHMARK["symbols"] and all(len(classes) == 1 for classes in table.values())
    assert {r["input"][len(lead):].split()[0] for r in instructed} == set(synthetic.POSITIONS)
    assert prepare.synthetic_records(BENCHMARK, prepare.GENERAL, "seed", 0)["train"][0]["skill"] == "copy"
    spec = {k: v for k, v in BENCHMARK.items() if k != "name"}
    for bad in (["copy", "copy"], ["telepathy"], []):
        with pytest.raises(ValueError, match="benchmark.general_skills"):
            synthetic.generate(seed=0, **{**spec, "general_skills": bad})


def test_tasks_compete_for_the_same_outputs():
    spec = {k: v for k, v in BENCHMARK.items() if k != "name"}
    tasks = synthetic.generate(seed=0, **spec)["tasks"]
    assert {ex["target"] for ex in tasks["alpha"]["test"]} == {ex["target"] for ex in tasks["beta"]["test"]}


def test_prepared_records_and_bad_data_errors(tmp_path, prepared):
    _, files = prepared
    records = prepare.load_records(files["alpha"]["train"])
    assert records[0]["input"].startswith("Task alpha")
    assert "[red, blue]" in records[0]["input"]
    assert records[0]["labels"] == ["red", "blue"]
    broken = tmp_path / "broken.jsonl"
    write_jsonl(broken, [{"id": "x", "task": "alpha", "input": "a"}])
    with pytest.raises(ValueError, match=r"broken.jsonl: record 1 lacks keys \['target', 'labels'\]"):
        prepare.load_records(broken)
    broken.write_text('{"id": 1}\nnot json\n')
    with pytest.raises(ValueError, match="broken.jsonl:2"):
        prepare.load_records(broken)


def test_olora_template():
    text = prepare.apply_template("olora", task="agnews", category="TC", instruction="What is the topic?",
                               labels=["World", "Sports"], text="Some news")
    assert text == ("Task:TC\nDataset:agnews\nWhat is the topic? Choose one from the option.\n"
                    "Option: World, Sports \nSome news\nAnswer:")
    with pytest.raises(ValueError, match="data.template"):
        prepare.apply_template("fancy", task="a", category="b", instruction="c", labels=["d"], text="e")


def test_normalised_exact_match():
    assert scoring.normalise("  Science or   Technology. ") == "science or technology"
    scores = scoring.score([{"input": "a", "target": "Very Negative"}, {"input": "b", "target": "red"}],
                           ["very negative!", "blue"])
    assert scores == {"metric": "exact_match", "correct": 1, "total": 2, "score": 50.0,
                      "unanswerable": 0}


def test_base_checkpoint_loads_with_from_pretrained(prepared):
    root, _ = prepared
    model = AutoModelForSeq2SeqLM.from_pretrained(root / "base" / "model")
    assert (root / "base" / "model" / "model.safetensors").exists()
    assert model.config.model_type == "bart"


def test_svd_cache_stamp_detects_tampering(tmp_path, prepared):
    root, _ = prepared
    cache = tmp_path / "svd.safetensors"
    summary = svd.build_cache(root / "base" / "model", cache)
    model, _ = load_checkpoint(root / "base" / "model")
    modules = find_targets(model)
    assert summary["weights_sha256"] == svd.weights_hash(svd.module_weights(modules)) == svd.read_stamp(cache)
    name = next(iter(modules))
    stored = {key: value.clone() for key, value in load_file(cache).items()}  # the file is truncated below
    U, S, Vh = stored[f"{name}.U"], stored[f"{name}.S"], stored[f"{name}.Vh"]
    assert torch.allclose((U * S) @ Vh, modules[name].weight, atol=1e-5)
    # a valid cache is used as stored
    assert torch.equal(svd.cached_svd(cache, model, modules)[name][1], S)
    # weights that differ from the stamp: recomputed from the weights, never the stale cache
    with torch.no_grad():
        modules[name].weight.mul_(2.0)
    assert torch.allclose(svd.cached_svd(cache, model, modules)[name][1], 2 * S, atol=1e-5)
    # a truncated file is recomputed too
    cache.write_bytes(cache.read_bytes()[:100])
    assert torch.allclose(svd.cached_svd(cache, model, modules)[name][1], 2 * S, atol=1e-5)


def test_svd_cache_is_what_the_constraint_accepts(tmp_path, prepared):
    from safetensors import safe_open

    from asvd.method import ranks
    from asvd.method.constraint import OrthogonalSubspace

    root, _ = prepared
    cache = tmp_path / "svd.safetensors"
    svd.build_cache(root / "base" / "model", cache)
    with safe_open(str(cache), framework="pt") as handle:
        assert set(json.loads(handle.metadata()["asvd"])["versions"]) == {"asvd", "torch", "safetensors"}
    model, _ = load_checkpoint(root / "base" / "model")
    from_file = OrthogonalSubspace(model, rank_rule=ranks.Uniform(0.5), svd=cache)
    computed = OrthogonalSubspace(model, rank_rule=ranks.Uniform(0.5))
    for name, sub in computed.subspaces.items():
        assert torch.allclose(from_file.subspaces[name].anchor(), sub.anchor(), atol=1e-6)
    assert from_file.max_violation() < 5e-6


def run_task(root, files, out, method, step=1, checkpoint=None, svd_path=None):
    return finetune_task(
        TaskInputs(checkpoint=checkpoint or root / "base" / "model", train_file=files["alpha"]["train"],
                   previous_train_file=files["beta"]["train"], svd_path=svd_path),
        TaskPosition("alpha", index=step, count=2),
        method=method, settings=TRAIN, seed=0, out_dir=out / "model", log_json=out / "train_log.json",
    )


def test_finetune_task_keeps_frozen_triplets_and_logs(tmp_path, prepared):
    root, files = prepared
    result = run_task(root, files, tmp_path, ASVD)
    assert result["max_violation"] <= 1e-5
    assert 0 < sum(result["frozen_ranks"].values()) < sum(result["ranks"].values())
    logged = read_json(tmp_path / "train_log.json")
    assert logged["steps"] == len(logged["loss"]) == 8
    before, _ = load_checkpoint(root / "base" / "model")
    after, _ = load_checkpoint(tmp_path / "model")
    moved = [name for name, m in find_targets(after).items()
             if not torch.equal(m.weight, find_targets(before)[name].weight)]
    assert moved, "a constrained task must still change the target weights"


def test_finetune_task_with_update_projection_keeps_frozen_triplets(tmp_path, prepared):
    root, files = prepared
    result = run_task(root, files, tmp_path, {**ASVD, "acts_on": "update"})
    assert result["max_violation"] <= 1e-5
    assert sum(result["frozen_ranks"].values()) > 0


def test_seqft_equals_uniform_unfreeze_one_bit_for_bit(tmp_path, prepared):
    root, files = prepared
    run_task(root, files, tmp_path / "seqft", {"rank_rule": None})
    run_task(root, files, tmp_path / "uniform1",
             {"rank_rule": {"name": "uniform", "unfreeze": 1.0}, "projection": "two_sided"})
    a = load_file(tmp_path / "seqft" / "model" / "model.safetensors")
    b = load_file(tmp_path / "uniform1" / "model" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_first_task_full_trains_unconstrained(tmp_path, prepared):
    root, files = prepared
    method = {**ASVD, "first_task": "full"}
    result = run_task(root, files, tmp_path, method)
    assert sum(result["frozen_ranks"].values()) == 0


def test_train_other_params_false_freezes_non_targets(tmp_path, prepared):
    root, files = prepared
    run_task(root, files, tmp_path, {**ASVD, "train_other_params": False})
    a = load_file(root / "base" / "model" / "model.safetensors")
    b = load_file(tmp_path / "model" / "model.safetensors")
    model, _ = load_checkpoint(tmp_path / "model")
    targets = {f"{name}.weight" for name in find_targets(model)}
    for key in a:
        if key not in targets:
            assert torch.equal(a[key], b[key]), key


def test_evaluate_checkpoint_writes_scores(tmp_path, prepared):
    root, files = prepared
    out = tmp_path / "eval.json"
    result = evaluate.evaluate_checkpoint(
        root / "base" / "model", {"alpha": files["alpha"]["test"], "general": files["general"]["test"]},
        out, batch_size=8, max_new_tokens=8)
    assert json.loads(out.read_text()) == result
    assert result["scores"]["alpha"]["total"] == 16
    # the scores are those of the model's own greedy answers, generated again here
    model, tokenizer = load_checkpoint(root / "base" / "model")
    for name in ("alpha", "general"):
        records = load_records(files[name]["test"])
        answers = evaluate.generate(model, tokenizer, [r["input"] for r in records], 8, 8, 128)
        expected = {**scoring.score(records, answers), "truncated": 0}
        # tasks that list their options are also scored by ranking them, the free-form general set not
        if name == "alpha":
            chosen = ranking.most_likely_options(model, tokenizer, records, 8, 128, 8)
            expected.update(ranking.ranked_scores(records, answers, chosen))
        assert ranking.rankable(records) == (name == "alpha")
        assert result["scores"][name] == expected
        assert expected["correct"] == sum(scoring.normalise(a) == scoring.normalise(r["target"])
                                          for a, r in zip(answers, records))


def test_prompts_cut_by_max_source_length_are_counted_and_warned_about(tmp_path, prepared, caplog):
    """A max_source_length below the prompts' length cuts off the text a task asks about: the
    eval counts the cut prompts per test set and the job's log names the set."""
    root, files = prepared
    longest = max(len(ids) for ids in load_checkpoint(root / "base" / "model")[1](
        [r["input"] for r in load_records(files["alpha"]["test"])])["input_ids"])
    with caplog.at_level("WARNING", logger="asvd.evaluation.evaluate"):
        result = evaluate.evaluate_checkpoint(root / "base" / "model", {"alpha": files["alpha"]["test"]},
                                              tmp_path / "eval.json", batch_size=8, max_new_tokens=4,
                                              max_source_length=longest - 1, rank_options=False)
    assert 0 < result["scores"]["alpha"]["truncated"] <= result["scores"]["alpha"]["total"]
    assert f"{files['alpha']['test']}: {result['scores']['alpha']['truncated']} of 16 prompts" in caplog.text
    whole = evaluate.evaluate_checkpoint(root / "base" / "model", {"alpha": files["alpha"]["test"]},
                                         tmp_path / "eval2.json", batch_size=8, max_new_tokens=4,
                                         max_source_length=longest, rank_options=False)
    assert whole["scores"]["alpha"]["truncated"] == 0


def test_fetch_base_model_loads_by_name_from_a_local_directory(tmp_path, prepared):
    """The real-model path (a hub id for users with network) exercised on local files."""
    from asvd.train.base import fetch_base_model

    root, _ = prepared
    result = fetch_base_model(str(root / "base" / "model"), tmp_path / "model", tmp_path / "log.json")
    assert result["model_type"] == "bart" and result["parameters"] > 0
    a = load_file(root / "base" / "model" / "model.safetensors")
    b = load_file(tmp_path / "model" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
