"""TRACE: its directory of {prompt, answer} records, its per-task metrics (checked against
published values and hand-computed cases), and a tiny causal LM through the whole workflow."""

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from asvd.analysis.metrics import summarise_run
from asvd.data.prepare import prepare_task
from asvd.data.sources import trace_examples
from asvd.data.tasks import TRACE_METRICS, TRACE_ORDER
from asvd.evaluation.scoring import (
    answer_letter,
    code_literals,
    edit_similarity,
    rouge_l,
    sari_sentence,
    score,
)
from asvd.io import read_json, read_jsonl
from asvd.train.models import build_word_tokenizer, save_checkpoint
from conftest import REPO, built_once, random_llama, run_snakemake


def write_trace_dir(root, tasks=TRACE_ORDER, count=6):
    """TRACE's layout, made by the test: <root>/<task>/{train,eval,test}.json."""
    for task in tasks:
        folder = root / task
        folder.mkdir(parents=True)
        for split in ("train", "eval", "test"):
            records = [{"prompt": f"{task} {split} question {i}", "answer": f"answer {i % 3}"}
                       for i in range(count)]
            (folder / f"{split}.json").write_text(json.dumps(records))
    return root


# --------------------------------------------------------------------------- metrics


def test_sari_reproduces_the_published_values():
    # evaluate's SARI docstring (the implementation TRACE calls)
    assert sari_sentence("About 95 species are currently accepted .", "About 95 you now get in .",
                         ["About 95 species are currently known .",
                          "About 95 species are now accepted .",
                          "95 species are now accepted ."]) == pytest.approx(26.953601953601954)
    # two sentences, untokenised (the 13a tokenizer splits the final periods); mean = corpus value
    sources = ["About 95 species are currently accepted.", "The cat perched on the mat."]
    outputs = ["About 95 you now get in.", "Cat on mat."]
    refs = [["About 95 species are currently known.", "About 95 species are now accepted.",
             "95 species are now accepted."],
            ["The cat sat on the mat.", "The cat is on the mat.", "The cat sat."]]
    mean = sum(map(sari_sentence, sources, outputs, refs)) / 2
    assert mean == pytest.approx(29.13266517433184)


def test_sari_rewards_a_copy_of_the_reference_over_a_copy_of_the_source():
    source, reference = "the cat perched upon the mat", "the cat sat on the mat"
    assert sari_sentence(source, reference, [reference]) > sari_sentence(source, source, [reference])


def test_rouge_l_is_the_lcs_f1():
    # LCS("the cat sat", "the cat sat on the mat") = 3: P = 1, R = 1/2, F = 2/3
    assert rouge_l("the cat sat", "the cat sat on the mat", "") == pytest.approx(200 / 3)
    assert rouge_l("", "the cat", "") == 0.0


def test_edit_similarity_restores_literals_like_trace():
    assert code_literals('x = <NUM_LIT> + f(<STR_LIT:abc>, <STR_LIT>)') == 'x = 0 + f(abc, )'
    assert edit_similarity("abcd", "abce", "") == pytest.approx(75.0)  # 2 indels over 8 chars
    assert edit_similarity("x = <NUM_LIT>", "x = 0", "") == 100.0
    assert edit_similarity("", "x", "") == 0.0


def test_choice_accuracy_reads_the_option_after_answer():
    assert answer_letter("Answer: B. Because it floats.") == "B"
    assert answer_letter("B") == ""
    records = [{"input": "q", "target": "Answer: B. Because ...", "metric": "choice_accuracy"}] * 3
    result = score(records, ["Answer: B", "Answer: C. Because ...", "B"])
    assert result["score"] == pytest.approx(100 / 3) and result["correct"] == 1


def test_score_names_its_metric_and_counts_only_right_or_wrong_ones():
    summary = [{"input": "long text", "target": "short text", "metric": "rouge_l"}]
    result = score(summary, ["short text"])
    assert result == {"metric": "rouge_l", "score": 100.0, "total": 1, "unanswerable": 0}
    with pytest.raises(ValueError, match="several metrics"):
        score(summary + [{"input": "a", "target": "b"}], ["x", "y"])
    with pytest.raises(ValueError, match="unknown metric 'bleu'"):
        score([{"input": "a", "target": "b", "metric": "bleu"}], ["b"])


def test_trace_registry_follows_the_benchmarks_order_and_metrics():
    assert TRACE_ORDER == ["C-STANCE", "FOMC", "MeetingBank", "Py150", "ScienceQA", "NumGLUE-cm",
                           "NumGLUE-ds", "20Minuten"]
    assert (TRACE_METRICS["MeetingBank"], TRACE_METRICS["Py150"], TRACE_METRICS["20Minuten"]) == (
        "rouge_l", "edit_similarity", "sari")


def test_micro_accuracy_is_none_when_a_metric_is_not_right_or_wrong():
    def eval_(scores):
        return {"scores": {task: {"metric": m, "score": s, "total": 4, "unanswerable": 0,
                                  **({"correct": round(s * 4 / 100)} if m == "exact_match" else {})}
                           for task, (m, s) in scores.items()}}

    base = eval_({"FOMC": ("exact_match", 25.0), "MeetingBank": ("rouge_l", 10.0)})
    step1 = eval_({"FOMC": ("exact_match", 75.0), "MeetingBank": ("rouge_l", 12.0)})
    step2 = eval_({"FOMC": ("exact_match", 50.0), "MeetingBank": ("rouge_l", 40.0)})
    matrix, summary = summarise_run(base, [step1, step2], ["FOMC", "MeetingBank"], {})
    assert summary["aa"] == pytest.approx(45.0)  # TRACE's OP: mean final score
    assert summary["bwt"] == pytest.approx(-25.0)
    assert summary["micro_accuracy"] is None and summary["general"] is None


# --------------------------------------------------------------------------- data


def test_trace_task_is_sampled_with_a_seed_and_keeps_its_metric(tmp_path):
    root = write_trace_dir(tmp_path / "trace", ["MeetingBank"], count=20)
    first = trace_examples(root, "MeetingBank", "train", 5, seed=3)
    assert first == trace_examples(root, "MeetingBank", "train", 5, seed=3)
    assert first != trace_examples(root, "MeetingBank", "train", 5, seed=4)
    numbers = [int(r["prompt"].rsplit(" ", 1)[1]) for r in first]
    assert numbers == sorted(numbers)  # file order kept
    benchmark = {"name": "trace", "trace_dir": str(root), "train_per_task": 5, "test_per_task": None}
    stats = prepare_task(benchmark, "MeetingBank", "olora", 0, tmp_path / "train.jsonl",
                         tmp_path / "test.jsonl")
    assert stats["train"]["records"] == 5 and stats["test"]["records"] == 20
    assert "labels" not in stats["test"] and stats["test"]["mean_target_chars"] == len("answer 0")
    record = read_jsonl(tmp_path / "test.jsonl")[0]
    assert record["input"] == "MeetingBank test question 0" and record["metric"] == "rouge_l"


BAD_TRACE = {
    "missing file": (None, "no such file"),
    "invalid json": ("[{", "invalid JSON at line 1"),
    "not an array": ('{"prompt": "p"}', "JSON array"),
    "empty split": ("[]", "empty split"),
    "record without answer": ('[{"prompt": "p", "answer": "a"}, {"prompt": "p"}]', "record 2"),
    "empty answer": ('[{"prompt": "p", "answer": "  "}]', "record 1 has an empty"),
}


@pytest.mark.parametrize("case", sorted(BAD_TRACE))
def test_bad_trace_data_names_the_file_and_record_and_writes_nothing(tmp_path, case):
    text, message = BAD_TRACE[case]
    root = write_trace_dir(tmp_path / "trace", ["FOMC"])
    test_file = root / "FOMC" / "test.json"
    if text is None:
        test_file.unlink()
    else:
        test_file.write_text(text)
    benchmark = {"name": "trace", "trace_dir": str(root), "train_per_task": None, "test_per_task": None}
    with pytest.raises((ValueError, FileNotFoundError), match=message) as err:
        prepare_task(benchmark, "FOMC", "olora", 0, tmp_path / "train.jsonl", tmp_path / "test.jsonl")
    assert str(test_file) in str(err.value)
    assert not (tmp_path / "train.jsonl").exists() and not (tmp_path / "test.jsonl").exists()


def test_an_unknown_trace_task_lists_traces_tasks(tmp_path):
    benchmark = {"name": "trace", "trace_dir": str(tmp_path), "train_per_task": None,
                 "test_per_task": None}
    with pytest.raises(ValueError, match="unknown TRACE task 'agnews'.*20Minuten"):
        prepare_task(benchmark, "agnews", "olora", 0, tmp_path / "a", tmp_path / "b")


# --------------------------------------------------------------------------- the workflow

TASKS = ["FOMC", "MeetingBank", "20Minuten"]  # exact match, ROUGE-L, SARI


def tiny_llama_dir(path, texts):
    tokenizer = build_word_tokenizer(texts)
    save_checkpoint(random_llama(tokenizer), tokenizer, path)
    return path


@pytest.fixture(scope="module")
def trace_study(tmp_path_factory):
    """A seqft and an asvd run over three TRACE tasks with a tiny random LLaMA, once per session."""
    return Path(built_once(tmp_path_factory, "trace_study", _run_trace_study))


def _run_trace_study(root: Path) -> str:
    root.mkdir(parents=True)
    trace = write_trace_dir(root / "trace", TASKS, count=8)
    texts = [f"{t} {s} question {i}" for t in TASKS for s in ("train", "test") for i in range(8)]
    model = tiny_llama_dir(root / "llama", texts + ["answer 0 1 2"])
    config = root / "trace.yaml"
    config.write_text(f"""
experiment: tiny_trace
run: {{methods: [seqft, asvd], orders: [1], seeds: [0]}}
orders: {{1: {json.dumps(TASKS)}}}
benchmark:
  name: trace
  trace_dir: {trace}
  tasks: {json.dumps([{"name": t} for t in TASKS])}
  train_per_task: 6
  test_per_task: null
base_model: {{pretrained: {model}}}
train: {{epochs: 1, task_epochs: {{MeetingBank: 3}}, batch_size: 4, lr: 1.0e-2,
        max_source_length: 16, max_target_length: 8}}
methods:
  seqft: {{rank_rule: null, target_modules: auto, train_other_params: true}}
  asvd: {{rank_rule: {{name: importance, mrr: 0.1, trr: 0.8, samples: 4}},
          target_modules: auto, train_other_params: false}}
evaluation: {{batch_size: 8, max_new_tokens: 4, max_source_length: 16}}
paper_table:
  reference: {REPO / "config" / "reference" / "trace_llama2_7b_chat.csv"}
  method_names: {{seqft: SeqFT, asvd: Adaptive SVD}}
""")
    run_snakemake(root, "all_figures", "--cores", "2", configfiles=[config], timeout=900)
    return str(root / "results" / "tiny_trace")


@pytest.mark.long(3)
def test_trace_study_scores_every_task_with_its_metric(trace_study):
    results = trace_study
    final = read_json(results / "asvd" / "order1" / "seed0" / "step3" / "eval.json")["scores"]
    assert {task: final[task]["metric"] for task in TASKS} == {
        "FOMC": "exact_match", "MeetingBank": "rouge_l", "20Minuten": "sari"}
    assert all(final[task]["total"] == 8 for task in TASKS)
    assert "correct" in final["FOMC"] and "correct" not in final["MeetingBank"]
    summary = read_json(results / "asvd" / "order1" / "seed0" / "summary.json")
    assert summary["micro_accuracy"] is None and summary["general"] is None
    matrix = pd.read_csv(results / "asvd" / "order1" / "seed0" / "accuracy_matrix.csv", index_col=0)
    assert list(matrix.columns) == TASKS
    assert summary["aa"] == pytest.approx(matrix.iloc[-1].mean())


def test_trace_study_trains_each_task_for_its_epochs(trace_study):
    results = trace_study
    steps = [read_json(results / "seqft" / "order1" / "seed0" / f"step{k}" / "train_log.json")["steps"]
             for k in (1, 2, 3)]
    assert steps == [2, 6, 2]  # 6 examples in batches of 4; MeetingBank 3 epochs


def test_trace_study_puts_op_and_bwt_beside_the_papers(trace_study):
    results = trace_study
    table = pd.read_csv(results / "tables" / "paper.csv").set_index("method")
    summary = read_json(results / "asvd" / "order1" / "seed0" / "summary.json")
    assert table.at["Adaptive SVD", "op paper"] == 48.4
    assert table.at["Adaptive SVD", "op this run"] == pytest.approx(summary["aa"])
    assert table.at["Adaptive SVD", "bwt this run"] == pytest.approx(summary["bwt"])
    assert math.isnan(table.at["MTL", "op this run"])
    assert (results / "figures" / "accuracy_matrix_asvd.png").stat().st_size > 0


def test_a_trace_study_names_a_missing_directory_and_unknown_task(tmp_path):
    config = REPO / "config" / "paper" / "llama2_7b_chat_trace.yaml"
    result = run_snakemake(tmp_path, "all_figures", "-n", "--config",
                           "benchmark={trace_dir: /no/such/trace, tasks: [{name: FOMC}, {name: agnews}]}",
                           configfiles=[config], check=False)
    log = result.stdout + result.stderr
    assert result.returncode != 0
    for name in ("benchmark.trace_dir", "/no/such/trace", "benchmark.tasks", "agnews", "20Minuten"):
        assert name in log, f"{name!r} not in:\n{log[-3000:]}"
    assert not (tmp_path / "results").exists()
