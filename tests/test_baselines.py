"""Baselines as values of the method wildcard: each test fails if the method's defining property
breaks (EWC's anchor, LwF's frozen teacher, replay's exact seeded memory), and every method runs
end to end through the workflow on a 2-task config."""

from pathlib import Path

import pandas as pd
import pytest
import torch

from asvd.baselines.regularizers import DistillationLoss, EWCPenalty, fisher_diagonal
from asvd.baselines.replay import replay_mix, task_memory
from asvd.io import read_json
from asvd.train.loop import TrainSettings, encode
from asvd.train.models import build_word_tokenizer
from conftest import REPO, built_once, effective_config, random_llama, run_snakemake

TINY = REPO / "tests" / "configs" / "tiny.yaml"

RECORDS = [{"input": f"map {word} to", "target": answer}
           for word, answer in [("one", "red"), ("two", "blue"), ("three", "red"), ("four", "green")]]


def tiny_model():
    tokenizer = build_word_tokenizer([t for r in RECORDS for t in (r["input"], r["target"])])
    model = random_llama(tokenizer, hidden_size=16, layers=1, heads=2)
    tokenizer.padding_side = "right"
    batch = encode(tokenizer, RECORDS, TrainSettings(max_source_length=16), model)
    return model, batch


# --------------------------------------------------------------------------- EWC


def test_fisher_is_the_mean_squared_per_sample_gradient():
    model, batch = tiny_model()
    samples = [{k: v[i:i + 1] for k, v in batch.items()} for i in range(len(RECORDS))]
    fisher = fisher_diagonal(model, samples)
    assert all(p.grad is None for p in model.parameters())  # nothing left for the optimizer
    name = "model.layers.0.mlp.up_proj.weight"
    expected = torch.zeros_like(dict(model.named_parameters())[name])
    for sample in samples:
        model.zero_grad()
        model(**sample).loss.backward()
        expected += dict(model.named_parameters())[name].grad ** 2
    torch.testing.assert_close(fisher[name], expected / len(samples))


def test_ewc_penalty_is_zero_at_the_anchor_and_fisher_weighted_away_from_it():
    model, _ = tiny_model()
    params = dict(model.named_parameters())
    weight = params["model.layers.0.mlp.up_proj.weight"]
    fisher = {"model.layers.0.mlp.up_proj.weight": torch.full_like(weight, 2.0)}
    fisher["model.layers.0.mlp.up_proj.weight"][0, 0] = 10.0
    penalty = EWCPenalty(model, fisher, strength=3.0)
    assert penalty(model, None, None).item() == 0.0
    with torch.no_grad():
        weight[0, 0] += 0.5  # Fisher 10: 1.5 * 10 * 0.25
        weight[1, 1] += 0.5  # Fisher 2: 1.5 * 2 * 0.25
    assert penalty(model, None, None).item() == pytest.approx(1.5 * 10 * 0.25 + 1.5 * 2 * 0.25)
    with torch.no_grad():
        weight[1, 1] += 0.5  # twice as far: four times the term
    assert penalty(model, None, None).item() == pytest.approx(1.5 * 10 * 0.25 + 1.5 * 2 * 1.0)


def test_online_ewc_keeps_every_earlier_tasks_fisher_in_the_penalty(tmp_path):
    """Three tasks: the third task's penalty holds decay x task 1's Fisher + task 2's."""
    from asvd.baselines.regularizers import FISHER_FILE, read_fisher
    from asvd.io import write_jsonl
    from asvd.train.finetune import TaskInputs, TaskPosition, finetune_task
    from asvd.train.loop import sample_batches
    from asvd.train.models import load_checkpoint, save_checkpoint

    model, _ = tiny_model()
    tokenizer = build_word_tokenizer([t for r in RECORDS for t in (r["input"], r["target"])])
    save_checkpoint(model, tokenizer, tmp_path / "base")
    tasks = {"one": RECORDS[:2], "two": RECORDS[2:], "three": RECORDS[1:3]}
    for task, records in tasks.items():
        write_jsonl(tmp_path / f"{task}.jsonl", [{"id": f"{task}{i}", "task": task, "labels": None, **r}
                                                 for i, r in enumerate(records)])
    method = {"rank_rule": None, "ewc": {"strength": 10.0, "fisher_samples": 2, "decay": 0.5}}
    settings = {"epochs": 5, "batch_size": 2, "lr": 1e-2, "max_source_length": 16}
    previous, previous_train = tmp_path / "base", None
    for step, task in enumerate(tasks, start=1):
        finetune_task(TaskInputs(previous, tmp_path / f"{task}.jsonl", previous_train),
                      TaskPosition(task, step, 3), method, settings, 0, tmp_path / f"step{step}",
                      tmp_path / f"log{step}.json")
        previous, previous_train = tmp_path / f"step{step}", tmp_path / f"{task}.jsonl"
    assert read_fisher(tmp_path / "step1") == {} and (tmp_path / "step2" / FISHER_FILE).is_file()
    task1 = read_fisher(tmp_path / "step2")  # task one's Fisher at the weights after task one

    def fisher_of(checkpoint, records):
        model, tokenizer = load_checkpoint(checkpoint)
        batches = sample_batches(model, tokenizer, records, TrainSettings(**settings), 2, 0)
        return fisher_diagonal(model, batches)

    torch.testing.assert_close(task1, fisher_of(tmp_path / "step1", tasks["one"]))
    task2 = fisher_of(tmp_path / "step2", tasks["two"])
    accumulated = read_fisher(tmp_path / "step3")
    name = "model.layers.0.mlp.up_proj.weight"
    assert task1[name].abs().sum() > 0 and task2[name].abs().sum() > 0
    for key in task2:
        torch.testing.assert_close(accumulated[key], task2[key] + 0.5 * task1[key])


# --------------------------------------------------------------------------- LwF


def test_lwf_targets_come_from_the_frozen_previous_model():
    model, batch = tiny_model()
    before = model(**batch).logits.detach()
    distill = DistillationLoss(model, strength=1.0, temperature=2.0)
    assert distill(model, batch, model(**batch)).item() == pytest.approx(0.0, abs=1e-6)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    outputs = model(**batch)
    loss = distill(model, batch, outputs)
    assert loss.item() > 1e-4
    torch.testing.assert_close(distill.teacher_logits(batch), before)  # teacher did not move
    loss.backward()
    assert all(p.grad is None for p in distill.teacher.parameters())
    assert any(p.grad is not None for p in model.parameters())


def test_lwf_distils_exactly_the_positions_that_predict_answer_tokens():
    model, batch = tiny_model()
    distill = DistillationLoss(model, strength=0.5, temperature=2.0)
    with torch.no_grad():
        model.lm_head.weight.add_(0.1 * torch.randn_like(model.lm_head.weight))
    student = model(**batch).logits.detach()
    teacher = distill.teacher_logits(batch)
    expected, count = 0.0, 0
    for row, col in (batch["labels"] != -100).nonzero().tolist():  # logits at col - 1 predict col
        p_t = torch.softmax(teacher[row, col - 1] / 2.0, -1)
        log_p_s = torch.log_softmax(student[row, col - 1] / 2.0, -1)
        expected += float((p_t * (p_t.log() - log_p_s)).sum())
        count += 1
    # batchmean over answer positions, times strength * T^2
    assert distill(model, batch, model(**batch)).item() == pytest.approx(0.5 * 4.0 * expected / count, rel=1e-5)


# --------------------------------------------------------------------------- replay


def records(task, n):
    return [{"id": f"{task}-{i}", "task": task, "input": f"{task} {i}", "target": "x"} for i in range(n)]


def test_replay_mixes_the_exact_share_from_earlier_tasks_only():
    new = records("gamma", 50)
    earlier = {"alpha": records("alpha", 30), "beta": records("beta", 30)}
    mixed = replay_mix(new, earlier, ratio=0.25, buffer_per_task=8, seed=0, step=3)
    replayed = [r for r in mixed if "replayed_from" in r]
    assert mixed[:50] == new and len(replayed) == 13  # 12.5 rounded half up
    assert [r["replayed_from"] for r in replayed].count("alpha") == 7  # the earliest take the remainder
    assert {r["task"] for r in replayed} <= {"alpha", "beta"}  # nothing of gamma or a later task
    for task in ("alpha", "beta"):
        memory = {r["id"] for r in task_memory(earlier[task], 8, 0, task)}
        drawn = [r["id"] for r in replayed if r["task"] == task]
        assert set(drawn) <= memory and len(set(drawn)) == len(drawn)  # within the memory, no repeats
    assert mixed == replay_mix(new, earlier, 0.25, 8, seed=0, step=3)
    assert mixed != replay_mix(new, earlier, 0.25, 8, seed=1, step=3)


def test_a_tasks_memory_is_fixed_once_written():
    alpha = records("alpha", 40)
    assert task_memory(alpha, 5, 0, "alpha") == task_memory(alpha, 5, 0, "alpha")
    assert task_memory(alpha, 5, 0, "alpha") != task_memory(alpha, 5, 1, "alpha")
    assert task_memory(alpha, None, 0, "alpha") == alpha
    step2 = replay_mix(records("beta", 40), {"alpha": alpha}, 1.0, 5, 0, step=2)
    step3 = replay_mix(records("gamma", 40), {"alpha": alpha, "beta": records("beta", 40)}, 1.0, 5, 0, step=3)
    seen = {r["id"] for r in step2 + step3 if r.get("replayed_from") == "alpha"}
    assert seen == {r["id"] for r in task_memory(alpha, 5, 0, "alpha")}  # cycles through the memory


def test_no_replay_on_the_first_task_or_at_ratio_zero():
    new = records("alpha", 10)
    assert replay_mix(new, {}, 0.5, None, 0, 1) == new
    assert replay_mix(new, {"beta": records("beta", 5)}, 0.0, None, 0, 2) == new


# --------------------------------------------------------------------------- the workflow

METHODS = list(effective_config(TINY)["methods"])  # all_baselines runs every defined method


def _run_every_baseline(root: Path) -> str:
    root.mkdir(parents=True)
    override = root / "one_order.yaml"
    # what each baseline does is checked here, not how well it learns: 2 epochs keep 13 methods quick
    override.write_text("run: {orders: [1]}\ntrain: {epochs: 2}\n")
    run_snakemake(root, "all_baselines", "--cores", "2", configfiles=[TINY, override], timeout=1200)
    return str(root / "results" / "tiny")


@pytest.fixture(scope="module")
def baseline_study(tmp_path_factory) -> Path:
    """Every method of the tiny study through ``all_baselines``, once per session."""
    return Path(built_once(tmp_path_factory, "baselines", _run_every_baseline))


@pytest.mark.long(1)
def test_every_baseline_runs_end_to_end(baseline_study):
    for method in METHODS:
        matrix = pd.read_csv(baseline_study / method / "order1" / "seed0" / "accuracy_matrix.csv",
                             index_col=0)
        assert list(matrix.index) == (["base", "joint"] if method == "mtl" else ["base", "alpha", "beta"])
    table = pd.read_csv(baseline_study / "baselines" / "tables" / "summary.csv")
    assert list(dict.fromkeys(table["method"])) == METHODS
    for name in ("accuracy_matrices", "aa_per_order", "learnability_retention", "general_retention"):
        assert (baseline_study / "baselines" / "figures" / f"{name}.png").stat().st_size > 5000


def test_baselines_do_what_their_config_says(baseline_study):
    def log(method, step):
        return read_json(baseline_study / method / "order1" / "seed0" / f"step{step}" / "train_log.json")

    assert log("replay", 1)["replayed"] == 0 and log("replay", 2)["replayed"] == round(0.1 * 64)
    assert log("asvd_replay", 2)["replayed"] == round(0.1 * 64) and log("asvd_replay", 2)["max_violation"] < 1e-5
    for method in ("ewc", "lwf"):
        assert "penalty" not in log(method, 1) and len(log(method, 2)["penalty"]) == log(method, 2)["steps"]
    assert "penalty" not in log("seqft", 2) and log("seqft", 2)["replayed"] == 0
    assert log("pertask", 2)["replayed"] == 0
    for method in ("seqlora", "inclora", "olora"):  # only the adapters train: r (32 + 32) on
        # the q and v projections of the 2 encoder layers' self-attention and the 2 decoder
        # layers' self-attention and cross-attention
        assert log(method, 2)["trained_parameters"] == 12 * 8 * (32 + 32)
    assert len(log("olora", 2)["penalty"]) == log("olora", 2)["steps"]


def test_pertask_scores_every_task_with_its_own_model(baseline_study):
    run = baseline_study / "pertask" / "order1" / "seed0"
    matrix = pd.read_csv(run / "accuracy_matrix.csv", index_col=0)
    step1 = read_json(run / "step1" / "eval.json")["scores"]
    step2 = read_json(run / "step2" / "eval.json")["scores"]
    assert matrix.loc["beta", "alpha"] == step1["alpha"]["score"]  # alpha's own model, not beta's
    assert matrix.loc["beta", "beta"] == step2["beta"]["score"]
    assert read_json(run / "summary.json")["bwt"] == 0.0


def test_pertask_starts_every_task_from_the_base_model(tmp_path):
    from test_workflow import dry_run_jobs

    override = tmp_path / "pertask.yaml"
    override.write_text("run: {methods: [pertask, replay], orders: [1], seeds: [0]}\n")
    result = run_snakemake(tmp_path, "all_figures", "-n", configfiles=[TINY, override])
    trainings = {output: job for job in dry_run_jobs(result.stdout + result.stderr)
                 for output in job.outputs if output.endswith("/model") and "/step" in output}
    base = "results/tiny/base/model"
    assert base in trainings["results/tiny/pertask/order1/seed0/step2/model"].inputs
    replay2 = trainings["results/tiny/replay/order1/seed0/step2/model"].inputs
    assert "results/tiny/replay/order1/seed0/step1/model" in replay2
    assert "results/tiny/data/alpha/train.jsonl" in replay2  # the earlier task's memory


# --------------------------------------------------------------------------- LoRA family


class TinyLoRALayer(torch.nn.Module):
    """What OrthogonalLoRA reads of a peft LoRA layer: lora_A / lora_B per adapter name."""

    def __init__(self, device="cpu"):
        super().__init__()
        self.lora_A = torch.nn.ModuleDict({"default": torch.nn.Linear(2, 1, bias=False, device=device)})
        self.lora_B = torch.nn.ModuleDict({"default": torch.nn.Linear(1, 2, bias=False, device=device)})


def test_olora_orthogonality_term_value_and_gradient_by_hand():
    from asvd.baselines.lora import OrthogonalLoRA

    layer = TinyLoRALayer()
    with torch.no_grad():
        layer.lora_A["default"].weight.copy_(torch.tensor([[1.0, 2.0]]))
    old_a = torch.tensor([[3.0, -1.0], [0.0, 1.0]])
    term = OrthogonalLoRA({"q": layer}, {"q": old_a}, lambda1=0.5, lambda2=0.0)
    value = term(None, None, None)
    assert value.item() == pytest.approx(0.5 * (abs(3 - 2) + abs(0 + 2)))  # A_new A_old^T = [1, 2]
    value.backward()
    # d/dA_new of 0.5 * sum|A_new A_old^T| = 0.5 * sign([1, 2]) @ A_old = 0.5 * [3, 0]
    torch.testing.assert_close(layer.lora_A["default"].weight.grad, torch.tensor([[1.5, 0.0]]))


@pytest.mark.parametrize("device", [
    "meta",  # a device the stored (CPU) matrices are not on, without a GPU
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")),
])
def test_olora_compares_with_the_stored_adapters_on_the_new_adapters_device(device):
    from asvd.baselines.lora import OrthogonalLoRA

    term = OrthogonalLoRA({"q": TinyLoRALayer(device)}, {"q": torch.ones(2, 2)}, lambda1=0.5,
                          lambda2=0.1)
    value = term(None, None, None)  # a CPU A against a device A raises without the move
    assert value.device.type == device and term.old_a["q"].device.type == device


def test_every_tasks_adapter_starts_from_its_own_seeded_init():
    from asvd.baselines.lora import adapter_seed, attach_lora, lora_layers

    assert adapter_seed(0, 2) == adapter_seed(0, 2)
    assert len({adapter_seed(seed, task) for seed in (0, 1) for task in (1, 2, 3)}) == 6
    spec = {"r": 2, "alpha": 4, "dropout": 0.0}
    q = "model.layers.0.self_attn.q_proj"
    initial = [lora_layers(attach_lora(tiny_model()[0], spec, [q], adapter_seed(0, task)), [q])[q]
               .lora_A["default"].weight for task in (1, 2)]
    assert not torch.allclose(initial[0], initial[1])


@pytest.fixture(scope="module")
def lora_runs(tmp_path_factory):
    """Two tasks of SeqLoRA, IncLoRA and O-LoRA (r = 2) from one tiny LLaMA checkpoint."""
    from asvd.io import write_jsonl
    from asvd.train.finetune import TaskInputs, TaskPosition, finetune_task
    from asvd.train.models import save_checkpoint

    root = tmp_path_factory.mktemp("lora")
    model, _ = tiny_model()
    tokenizer = build_word_tokenizer([t for r in RECORDS for t in (r["input"], r["target"])])
    save_checkpoint(model, tokenizer, root / "base")
    for task, records in (("one", RECORDS[:2]), ("two", RECORDS[2:])):
        write_jsonl(root / f"{task}.jsonl", [{"id": f"{task}{i}", "task": task, "labels": None, **r}
                                             for i, r in enumerate(records)])
    lora = {"r": 2, "alpha": 4, "dropout": 0.0, "target_modules": [r"\.(q|v)_proj$"]}
    methods = {"seqlora": {**lora, "per_task": False}, "inclora": {**lora, "per_task": True},
               "olora": {**lora, "per_task": True, "orthogonal": {"lambda1": 0.5, "lambda2": 0.0}}}
    settings = {"epochs": 20, "batch_size": 2, "lr": 1e-2, "max_source_length": 16}
    for name, spec in methods.items():
        previous = root / "base"
        for step, task in enumerate(("one", "two"), start=1):
            out = root / name / f"step{step}"
            finetune_task(TaskInputs(previous, root / f"{task}.jsonl", base_checkpoint=root / "base"),
                          TaskPosition(task, step, 2), {"rank_rule": None, "lora": spec}, settings, 0,
                          out / "model", out / "log.json")
            previous = out / "model"
    return root


def weights(path):
    from safetensors.torch import load_file

    return load_file(path / "model.safetensors")


def test_lora_methods_change_only_their_targets_by_low_rank_updates(lora_runs):
    base = weights(lora_runs / "base")
    q = "model.layers.0.self_attn.q_proj.weight"
    for method, rank_after_two in (("seqlora", 2), ("inclora", 4), ("olora", 4)):
        final = weights(lora_runs / method / "step2" / "model")
        for name, value in base.items():
            if not name.endswith(("q_proj.weight", "v_proj.weight")):
                assert torch.equal(final[name], value), (method, name)
        # one adapter through both tasks: rank <= r; one adapter per task: up to 2r
        assert torch.linalg.matrix_rank(final[q] - base[q], atol=1e-5).item() == rank_after_two, method


def test_incremental_adapters_keep_the_earlier_ones_frozen(lora_runs):
    from asvd.baselines.lora import read_state

    q = "model.layers.0.self_attn.q_proj"
    for method in ("inclora", "olora"):
        first = read_state(lora_runs / method / "step1" / "model")[f"{q}.A"]
        second = read_state(lora_runs / method / "step2" / "model")[f"{q}.A"]
        assert first.shape == (2, 16) and second.shape == (4, 16)
        assert torch.equal(second[:2], first)  # task 1's adapter untouched by task 2
        step1 = weights(lora_runs / method / "step1" / "model")[f"{q}.weight"]
        step2 = weights(lora_runs / method / "step2" / "model")[f"{q}.weight"]
        assert torch.linalg.matrix_rank(step2 - step1, atol=1e-5).item() <= 2  # only the new adapter moved
    seq = read_state(lora_runs / "seqlora" / "step2" / "model")
    assert seq[f"{q}.A"].shape == (2, 16) and seq[f"{q}.B"].shape == (16, 2)


def test_olora_pushes_the_new_adapter_orthogonal_to_the_old(lora_runs):
    from asvd.baselines.lora import read_state

    def overlap(method):
        total = 0.0
        for name, stacked in read_state(lora_runs / method / "step2" / "model").items():
            total += float(torch.abs(stacked[2:] @ stacked[:2].T).sum())
        return total

    assert overlap("olora") < overlap("inclora")


def test_mtl_trains_one_model_on_every_task(baseline_study):
    run = baseline_study / "mtl" / "order1" / "seed0"
    assert not (run / "step1").exists()
    log = read_json(run / "step2" / "train_log.json")
    assert log["examples"] == 64 + 64  # alpha's and beta's training sets together
    summary = read_json(run / "summary.json")
    assert summary["bwt"] is None and summary["aa"] == pytest.approx(
        sum(read_json(run / "step2" / "eval.json")["scores"][t]["score"] for t in ("alpha", "beta")) / 2)
