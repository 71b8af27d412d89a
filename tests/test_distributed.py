"""Under DDP (accelerate, 2 CPU processes over gloo, launched by asvd.train.parallel) the
constrained run equals a 1-process run.

The projection needs no communication under DDP: it is linear and the same on every process, so
projecting each gradient in its backward hook, before DDP all-reduces it, gives the all-reduced
projected gradient (docs/method.md §8); this test would catch a hook whose work DDP discarded.
"""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

HELPER = Path(__file__).parent / "helpers" / "ddp_train.py"


def train(processes: int, out: Path) -> dict[str, torch.Tensor]:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={processes}", str(HELPER), str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(command)} exited {result.returncode}:\n{result.stderr[-3000:]}")
    with safe_open(str(out), framework="pt") as handle:
        assert float(handle.metadata()["max_violation"]) <= 1e-5
    return load_file(out)


@pytest.mark.workflow
def test_two_process_ddp_matches_one_process(tmp_path):
    single = train(1, tmp_path / "single.safetensors")
    ddp = train(2, tmp_path / "ddp.safetensors")
    assert single.keys() == ddp.keys()
    for name in single:
        assert torch.allclose(single[name], ddp[name], atol=1e-5, rtol=0), name
    torch.manual_seed(0)
    initial = torch.nn.Linear(12, 24).weight  # the helper's first layer before training
    assert not torch.allclose(initial, single["0.weight"], atol=1e-3), "training must move the weights"


# finetune_task itself over 2 processes: a causal LM and an encoder-decoder, the adaptive
# constraint, a global batch of 6 split 3/3, labels of different lengths (so the per-slice token
# counts differ and the token-weighted loss matters). The learning rate is moderate because Adam
# turns float rounding in a gradient that is zero in exact arithmetic (BART's key biases: softmax
# ignores them) into steps of about lr, whatever the process count.
RECORDS = [{"id": f"r{i}", "task": "t", "labels": None, "input": f"map {w} to", "target": a}
           for i, (w, a) in enumerate([("one", "red"), ("two", "dark blue"), ("three", "red"),
                                       ("four", "pale green grass"), ("five", "blue"),
                                       ("six", "dark red"), ("seven", "green")])]
METHOD = {"rank_rule": {"name": "importance", "mrr": 0.1, "trr": 0.5, "samples": 4}, "target_modules": "auto"}


def seq2seq(tokenizer):
    from asvd.train.models import build_seq2seq
    architecture = {"d_model": 16, "encoder_layers": 1, "decoder_layers": 1, "encoder_attention_heads": 2,
                    "decoder_attention_heads": 2, "encoder_ffn_dim": 32, "decoder_ffn_dim": 32,
                    "max_position_embeddings": 32, "dropout": 0.0, "attention_dropout": 0.0,
                    "activation_dropout": 0.0}
    return build_seq2seq(tokenizer, "bart", architecture, 0)


@pytest.mark.workflow
@pytest.mark.parametrize("family", ["llama", "bart"])
def test_finetune_task_on_two_processes_matches_one(tmp_path, family):
    """DDP (replicas) and FSDP2 (row-sharded weights: the left projection's partial products are
    summed in one all-reduce per step) both train the model one process trains."""
    from asvd.io import read_json, write_jsonl
    from asvd.train.finetune import TaskInputs, TaskPosition, finetune_task
    from asvd.train.models import build_word_tokenizer, save_checkpoint
    from conftest import random_llama

    tokenizer = build_word_tokenizer([t for r in RECORDS for t in (r["input"], r["target"])])
    model = random_llama(tokenizer) if family == "llama" else seq2seq(tokenizer)
    save_checkpoint(model, tokenizer, tmp_path / "base")
    write_jsonl(tmp_path / "train.jsonl", RECORDS)
    outputs = {}
    for processes, distributed in [(1, "ddp"), (2, "ddp"), (2, "fsdp")]:
        settings = {"epochs": 6, "batch_size": 6, "lr": 3e-3, "max_source_length": 16,
                    "num_processes": processes, "distributed": distributed}
        out = tmp_path / f"{distributed}{processes}"
        finetune_task(TaskInputs(tmp_path / "base", tmp_path / "train.jsonl"), TaskPosition("t", 1, 1),
                      METHOD, settings, 0, out / "model", out / "log.json")
        outputs[distributed, processes] = (load_file(out / "model" / "model.safetensors"),
                                           read_json(out / "log.json"))
    single, single_log = outputs["ddp", 1]
    base = load_file(tmp_path / "base" / "model.safetensors")
    assert single_log["processes"] == 1 and single_log["steps"] == 12
    assert max(single_log["frozen_ranks"].values()) > 0
    assert sum(not torch.allclose(base[name], single[name], atol=1e-4) for name in single) \
        > len(single) // 2, "training must move most weights"
    for key in [("ddp", 2), ("fsdp", 2)]:
        weights, log = outputs[key]
        assert log["processes"] == 2 and log["steps"] == 12, key
        assert log["frozen_ranks"] == single_log["frozen_ranks"], key
        assert log["max_violation"] <= 1e-5, key
        assert log["loss"] == pytest.approx(single_log["loss"], abs=1e-5), key
        assert weights.keys() == single.keys(), key
        for name in single:
            assert torch.allclose(single[name], weights[name], atol=1e-5, rtol=0), (key, name)


def fsdp_run(root: Path, name: str, resume: bool) -> None:
    """Two FSDP2 processes on RECORDS, 80 steps, the intra-task state saved every 10."""
    from asvd.train.finetune import TaskInputs, TaskPosition, finetune_task

    settings = {"epochs": 80, "batch_size": 6, "lr": 3e-3, "max_source_length": 16,
                "num_processes": 2, "distributed": "fsdp", "checkpoint_every": 10}
    finetune_task(TaskInputs(root / "base", root / "train.jsonl"), TaskPosition("t", 1, 1), METHOD,
                  settings, 0, root / name / "model", root / name / "log.json",
                  resume_file=root / "state" / "train_state.pt" if resume else None)


@pytest.mark.workflow
@pytest.mark.long(6)
def test_a_sigkilled_fsdp_job_resumes_to_the_same_weights(tmp_path):
    """The sharded state is gathered whole for saving and scattered again when resuming."""
    import os
    import signal
    import time

    from asvd.io import read_json, write_jsonl
    from asvd.train.models import build_word_tokenizer, save_checkpoint
    from conftest import REPO, random_llama

    tokenizer = build_word_tokenizer([t for r in RECORDS for t in (r["input"], r["target"])])
    save_checkpoint(random_llama(tokenizer), tokenizer, tmp_path / "base")
    write_jsonl(tmp_path / "train.jsonl", RECORDS)
    fsdp_run(tmp_path, "reference", resume=False)
    script = ("import sys; from pathlib import Path; sys.path.insert(0, {tests!r});"
              "from test_distributed import fsdp_run; fsdp_run(Path({root!r}), 'killed', True)"
              ).format(tests=str(REPO / "tests"), root=str(tmp_path))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=tmp_path,
                               start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    state = tmp_path / "state" / "train_state.pt"
    deadline = time.monotonic() + 300
    while not state.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)  # the launcher and both training processes
    process.wait()
    assert state.exists(), "the job ended before saving any state"
    assert not (tmp_path / "killed" / "model").exists()
    fsdp_run(tmp_path, "killed", resume=True)
    log = read_json(tmp_path / "killed" / "log.json")
    assert log["resumed_from_step"] > 0 and log["max_violation"] <= 1e-5
    reference = load_file(tmp_path / "reference" / "model" / "model.safetensors")
    resumed = load_file(tmp_path / "killed" / "model" / "model.safetensors")
    assert reference.keys() == resumed.keys()
    for name in reference:
        assert torch.allclose(reference[name], resumed[name], atol=1e-6, rtol=0), name
    assert not state.exists()
