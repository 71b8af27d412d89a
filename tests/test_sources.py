"""Real task data: O-LoRA directories and the hub (mocked), checked before anything is written."""

import itertools
import json
import re
import string
from collections import Counter
from pathlib import Path

import pytest

from asvd.data import curriculum, prepare, sources, tasks
from asvd.evaluation.scoring import score
from asvd.io import read_jsonl
from conftest import shared_dir

AGNEWS = tasks.task("agnews")
MNLI = tasks.task("mnli")


def write_task(root, task, splits, labels=None):
    folder = root / task.olora_path
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "labels.json").write_text(json.dumps(list(labels or task.labels)))
    for split, records in splits.items():
        (folder / f"{split}.json").write_text(json.dumps(records))
    return folder


def examples(task, per_label, offset=0):
    return [{"sentence": f"Text: {label} example {i + offset}", "label": label}
            for label in task.labels for i in range(per_label)]


@pytest.fixture
def olora_dir(tmp_path):
    root = tmp_path / "CL_Benchmark"
    write_task(root, AGNEWS, {"train": examples(AGNEWS, 7), "test": examples(AGNEWS, 3, 100)})
    mnli_test = examples(MNLI, 2) + [{"sentence": "sentence 1: a\nsentence 2: b", "label": "-"}] * 2
    write_task(root, MNLI, {"train": examples(MNLI, 4), "test": mnli_test})
    return root


def benchmark(root, train=5, test=None, name="olora"):
    return {"name": name, "olora_dir": str(root), "train_per_class": train, "test_per_class": test}


def test_olora_task_is_sampled_per_class_with_a_seed_and_templated(olora_dir, tmp_path):
    stats = prepare.prepare_task(benchmark(olora_dir), "agnews", "olora", 0,
                              tmp_path / "train.jsonl", tmp_path / "test.jsonl")
    train = read_jsonl(tmp_path / "train.jsonl")
    assert stats["train"]["labels"] == {label: 5 for label in AGNEWS.labels}
    assert stats["test"]["records"] == 12  # test_per_class None: all of them
    first = train[0]
    assert first["input"].startswith("Task:TC\nDataset:agnews\nWhat is the topic of the following")
    assert first["input"].endswith("\nAnswer:") and first["target"] in AGNEWS.labels
    assert first["labels"] == list(AGNEWS.labels) and first["answerable"]
    again = prepare.real_records(benchmark(olora_dir), "agnews", "olora", 0)
    assert again["train"] == train
    other_seed = prepare.real_records(benchmark(olora_dir), "agnews", "olora", 1)
    assert [r["input"] for r in other_seed["train"]] != [r["input"] for r in train]


def test_seed_template_and_copa_without_instruction():
    prompt = prepare.apply_template("seed", task="agnews", category="TC", instruction="What?",
                                 labels=["A", "B"], text="x")
    assert prompt == "What? Choose one from the following options [A, B]. x"
    copa = prepare.apply_template("olora", task="COPA", category="COPA", instruction=None,
                               labels=["A", "B"], text="premise")
    assert copa == "Task:COPA\nDataset:COPA\npremise\nAnswer:"  # no instruction, no options
    nli = prepare.apply_template("olora", task="CB", category="NLI", instruction="Why?",
                              labels=["x", "y"], text="s")
    assert nli == "Task:NLI\nDataset:CB\nWhy? Choose one from the option.\nOption: x, y \ns\nAnswer:"


def test_unanswerable_mnli_items_are_kept_counted_and_never_correct(olora_dir, tmp_path):
    stats = prepare.prepare_task(benchmark(olora_dir), "mnli", "seed", 0, tmp_path / "tr.jsonl",
                              tmp_path / "te.jsonl")
    assert stats["test"]["unanswerable"] == 2 and stats["train"]["unanswerable"] == 0
    test = read_jsonl(tmp_path / "te.jsonl")
    # a model answering "" or "-" must not score on them ("-" normalises to "")
    predictions = ["-" if not r["answerable"] else r["target"] for r in test]
    result = score(test, predictions)
    assert result == {"metric": "exact_match", "correct": 6, "total": 8, "score": 75.0,
                      "unanswerable": 2}


BAD_FILES = {
    "missing file": (None, "no such file"),
    "invalid JSON": ('[{"sentence": "a", "label": "World"},\n oops]', "invalid JSON at line 2"),
    "not an array": ('{"sentence": "a"}', "expected a JSON array"),
    "truncated file": ('[{"sentence": "a", "label": "World"}, {"sentence": "b", "lab', "invalid JSON at line 1"),
    "record without sentence": ([{"label": "World"}], "record 1 has 'sentence' = None, not a string"),
    "non-string label": ([{"sentence": "a", "label": 3}], "record 1 has 'label' = 3, not a string"),
    "empty text": ([{"sentence": "a", "label": "World"}, {"sentence": " ", "label": "World"}],
                   "record 2 has an empty 'sentence'"),
    "not UTF-8": (b'[{"sentence": "caf\xe9", "label": "World"}]', "not UTF-8 text"),
    "lone surrogate": ('[{"sentence": "a\\ud800", "label": "World"}]',
                       "record 1 has a lone surrogate in 'sentence'"),
    "nested too deeply": ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    "label not in label set": ([{"sentence": "a", "label": "World"},
                                {"sentence": "b", "label": "Weather"}], "record 2 has label 'Weather'"),
    "empty split": ([], "empty split"),
    "one class": ([{"sentence": "a", "label": "World"}] * 3, "only 1 class"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_olora_data_names_the_file_and_record_and_writes_nothing(tmp_path, case):
    content, message = BAD_FILES[case]
    root = tmp_path / "CL_Benchmark"
    folder = write_task(root, AGNEWS, {"test": examples(AGNEWS, 2)})
    if content is not None:
        if isinstance(content, bytes):
            (folder / "train.json").write_bytes(content)
        else:
            (folder / "train.json").write_text(content if isinstance(content, str) else json.dumps(content))
    out = tmp_path / "out"
    with pytest.raises((ValueError, FileNotFoundError), match=message) as err:
        prepare.prepare_task(benchmark(root), "agnews", "seed", 0, out / "train.jsonl", out / "test.jsonl")
    assert "train.json" in str(err.value)
    assert not out.exists()


def test_labels_file_with_a_foreign_label_set_is_rejected(tmp_path):
    root = tmp_path / "CL_Benchmark"
    write_task(root, AGNEWS, {"train": examples(AGNEWS, 2)}, labels=["World", "Sports"])
    with pytest.raises(ValueError, match=r"labels.json: labels \['World', 'Sports'\]"):
        sources.read_olora_split(root, AGNEWS, "train")


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown task 'news'.*agnews"):
        tasks.task("news")


def test_registry_matches_the_papers_orders_and_label_sets():
    assert len(tasks.TASKS) == 15
    for order in tasks.ORDERS.values():
        assert all(name in tasks.TASKS for name in order)
    assert {len(order) for order in tasks.ORDERS.values()} == {4, 15}
    for task in tasks.TASKS.values():
        assert sorted(task.hub.labels) == sorted(task.labels), task.name


class FakeHub:
    """``load_dataset`` stand-in: in-memory ``datasets.Dataset`` objects, calls recorded."""

    def __init__(self, tables):
        self.tables, self.calls = tables, []

    def __call__(self, path, name=None, split=None):
        from datasets import Dataset

        self.calls.append((path, name, split))
        return Dataset.from_list(self.tables[split])


def test_hub_path_formats_maps_labels_and_balances_like_olora(tmp_path):
    rows = [{"premise": f"p{i}", "hypothesis": f"h{i}", "label": i % 3, "idx": i} for i in range(30)]
    hidden = [{"premise": "p", "hypothesis": "h", "label": -1, "idx": 99}]
    hub = FakeHub({"train": rows, "validation_matched": rows[:12] + hidden})
    spec = {"name": "hub", "train_per_class": 4, "test_per_class": None,
            "hub": {"mnli": {"path": "my-mirror/glue"}}}
    stats = prepare.prepare_task(spec, "mnli", "seed", 0, tmp_path / "tr.jsonl", tmp_path / "te.jsonl",
                              load_dataset=hub)
    assert hub.calls == [("my-mirror/glue", "mnli", "train"),
                         ("my-mirror/glue", "mnli", "validation_matched")]
    assert stats["train"]["labels"] == {"contradiction": 4, "entailment": 4, "neutral": 4}
    assert stats["test"]["records"] == 12  # the hidden-label row is dropped
    record = read_jsonl(tmp_path / "tr.jsonl")[0]
    assert "sentence 1: p" in record["input"] and "\nsentence 2: h" in record["input"]
    index = int(record["input"].rsplit("sentence 2: h", 1)[1])
    assert record["target"] == ("entailment", "neutral", "contradiction")[index % 3]


def test_hub_record_errors_name_the_dataset_and_record(tmp_path):
    hub = FakeHub({"train": [{"text": "a", "label": 0}, {"text": "b", "label": 9}]})
    with pytest.raises(ValueError, match=r"fancyzhx/ag_news \[train\]: record 2 has label 9"):
        sources.hub_examples(AGNEWS, "train", None, 0, load_dataset=hub)
    hub = FakeHub({"train": [{"body": "a", "label": 0}]})
    with pytest.raises(ValueError, match="record 1 lacks field 'text'"):
        sources.hub_examples(AGNEWS, "train", None, 0, load_dataset=hub)


SHARED = shared_dir()


@pytest.mark.skipif(SHARED is None, reason="../shared (the real O-LoRA subset) is not present")
def test_every_task_of_the_shared_olora_subset_loads_with_its_label_set():
    root = SHARED / "data" / "olora_cl_benchmark"
    loaded = Counter()
    for task in tasks.TASKS.values():
        folder = root / task.olora_path
        if not folder.is_dir():
            continue  # BoolQA and QQP are not in the subset
        for split in ("train", "test"):
            if not (folder / f"{split}.json").exists():
                continue  # a few large files are missing from the subset
            records, labels = sources.read_olora_split(root, task, split)
            assert sorted(labels) == sorted(task.labels)
            answerable = {r["label"] for r in records} - {sources.UNANSWERABLE}
            assert answerable <= set(task.labels) and len(answerable) >= 2
            loaded[split] += 1
            if task.name == "mnli" and split == "test":
                assert sum(r["label"] == "-" for r in records) == 131
    assert loaded["train"] >= 10 and loaded["test"] >= 8


# the 12 tasks of config/small_real.yaml (4 studied, 8 in the general mixture)
SMALL_REAL_TASKS = ("agnews", "amazon", "mnli", "sst-2", "dbpedia", "yelp", "imdb", "rte", "cb", "copa",
                    "wic", "multirc")
NO_HUB_TITLE = {"agnews", "amazon"}  # the hub's records have no separate title line


def as_hub_rows(info: tasks.Task, records: list[dict]) -> list[dict]:
    """O-LoRA records as the hub serves them: the fields of the task's hub text format read back
    out of each sentence (its title line dropped where the hub has none), label strings as ids."""
    pattern = "".join(re.escape(literal) + (f"(?P<{field}>.*?)" if field else "")
                      for literal, field, _, _ in string.Formatter().parse(info.hub.text))
    rows = []
    for record in records:
        if record["label"] == sources.UNANSWERABLE:
            continue  # the hub hides these labels (-1): its path drops them
        sentence = record["sentence"]
        if info.name in NO_HUB_TITLE:
            sentence = re.sub(r"^Title: [^\n]*\n", "", sentence)
        fields = re.fullmatch(pattern, sentence, re.S)
        assert fields is not None, (info.name, info.hub.text, sentence[:200])
        rows.append({**fields.groupdict(), info.hub.label_field: info.hub.labels.index(record["label"])})
    return rows


@pytest.mark.skipif(SHARED is None, reason="../shared (the real O-LoRA subset) is not present")
@pytest.mark.parametrize("name", SMALL_REAL_TASKS)
def test_small_real_s_tasks_read_through_the_hub_path_give_olora_s_prompts(name):
    """What users with network get from `benchmark.name: hub` for config/small_real.yaml: the
    shared subset served as the hub serves it, through the hub reader and prompt builder, gives
    the O-LoRA path's prompts and targets (AG News and Amazon without O-LoRA's title line)."""
    root, info = SHARED / "data" / "olora_cl_benchmark", tasks.task(name)
    template = "olora"
    olora_prompt = prepare.task_prompter(info, template, prepare.prompt_labels(
        {"name": "olora", "olora_dir": str(root)}, info, template))
    hub_prompt = prepare.task_prompter(info, template, prepare.prompt_labels({"name": "hub"}, info, template))
    compared = 0
    for split, hub_split in (("train", info.hub.train_split), ("test", info.hub.test_split)):
        if not (root / info.olora_path / f"{split}.json").exists():
            continue
        records, _ = sources.read_olora_split(root, info, split)
        hub = FakeHub({hub_split: as_hub_rows(info, records)})
        served = sources.hub_examples(info, split, None, 0, load_dataset=hub)
        expected = Counter((olora_prompt(re.sub(r"^Title: [^\n]*\n", "", r["sentence"])
                                         if name in NO_HUB_TITLE else r["sentence"]), r["label"])
                           for r in records if r["label"] != sources.UNANSWERABLE)
        assert Counter((hub_prompt(r["sentence"]), r["label"]) for r in served) == expected
        compared += len(served)
    assert compared >= 50



def test_repeated_prompts_and_test_prompts_seen_in_training_are_counted_and_warned_about(tmp_path, caplog):
    root = tmp_path / "CL_Benchmark"
    train = examples(AGNEWS, 3) + [examples(AGNEWS, 1)[0]] * 2  # one prompt three times
    test = examples(AGNEWS, 2, 100) + examples(AGNEWS, 1)[:3]  # three prompts trained on
    write_task(root, AGNEWS, {"train": train, "test": test})
    with caplog.at_level("WARNING", logger="asvd.data.prepare"):
        stats = prepare.prepare_task(benchmark(root, train=None, test=None), "agnews", "seed", 0,
                                     tmp_path / "tr.jsonl", tmp_path / "te.jsonl")
    assert (stats["train"]["duplicates"], stats["test"]["duplicates"]) == (2, 0)
    assert stats["test"]["also_in_train"] == 3
    assert "agnews train: 2 of 14 records repeat" in caplog.text
    assert "agnews: 3 of 11 test prompts also occur in training" in caplog.text


def test_capped_sampling_keeps_the_share_of_unanswerable_items():
    records = examples(MNLI, 10) + [{"sentence": f"s{i}", "label": "-"} for i in range(6)]
    chosen = sources.balanced_sample(records, 5, seed=0)
    assert Counter(r["label"] for r in chosen) == {"entailment": 5, "neutral": 5,
                                                   "contradiction": 5, "-": 3}
    assert chosen == sources.balanced_sample(records, 5, seed=0)


SST2, DBPEDIA = tasks.task("sst-2"), tasks.task("dbpedia")


def general_benchmark(root, train=4, test=2, general_tasks=("sst-2", "dbpedia")):
    return {**benchmark(root), "general": {"tasks": list(general_tasks), "train_per_class": train,
                                           "test_per_class": test}}


def test_general_mixture_is_held_out_per_class_and_drawn_from_the_split_a_task_ships(olora_dir,
                                                                                     tmp_path):
    write_task(olora_dir, SST2, {"train": examples(SST2, 10)})
    write_task(olora_dir, DBPEDIA, {"test": examples(DBPEDIA, 10, 500)})  # a test file only
    stats = prepare.prepare_task(general_benchmark(olora_dir), prepare.GENERAL, "seed", 0,
                              tmp_path / "train.jsonl", tmp_path / "test.jsonl")
    train, test = read_jsonl(tmp_path / "train.jsonl"), read_jsonl(tmp_path / "test.jsonl")
    assert stats["train"]["records"] == 4 * (2 + 14) and stats["test"]["records"] == 2 * (2 + 14)
    assert not {r["input"] for r in train} & {r["input"] for r in test}  # disjoint
    for part, per_class in ((train, 4), (test, 2)):
        counts = Counter((r["skill"], r["target"]) for r in part)
        assert set(counts.values()) == {per_class} and len(counts) == 2 + 14
    assert {r["task"] for r in train + test} == {prepare.GENERAL}
    assert all(r["labels"] is None for r in train + test)  # scored by exact match, like the default's
    dbpedia = next(r for r in train if r["skill"] == "dbpedia")
    assert dbpedia["input"].startswith(DBPEDIA.seed_instruction) and "example 5" in dbpedia["input"]
    assert [r["id"] for r in train] == [f"general-train-{i}" for i in range(len(train))]
    sst2_at = [i for i, r in enumerate(train) if r["skill"] == "sst-2"]
    assert sst2_at != list(range(sst2_at[0], sst2_at[0] + 8))  # interleaved, not in a block
    again = prepare.general_records(general_benchmark(olora_dir), "seed", 0)
    assert again == {"train": train, "test": test}
    other = prepare.general_records(general_benchmark(olora_dir), "seed", 1)
    assert {r["input"] for r in other["test"]} != {r["input"] for r in test}


def test_a_small_class_keeps_three_quarters_for_training_and_mnli_dashes_stay_out(olora_dir):
    write_task(olora_dir, SST2, {"train": examples(SST2, 4)})
    mixture = prepare.general_records(general_benchmark(olora_dir, train=10, test=3,
                                                     general_tasks=("sst-2", "mnli")), "seed", 0)
    counts = Counter((r["skill"], r["target"], split) for split in ("train", "test")
                     for r in mixture[split])
    assert counts[("sst-2", "Good", "test")] == 1 and counts[("sst-2", "Good", "train")] == 3
    assert all(r["target"] != sources.UNANSWERABLE for rows in mixture.values() for r in rows)


COPA = tasks.task("copa")
# made-up words of 4 letters for the texts new label names are drawn from
SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "ti", "vo", "ze"]
MADE_UP = ["".join(pair) for pair in itertools.product(SYLLABLES, repeat=2)]


def copa_examples(count):
    return [{"sentence": f'Which sentence is the effect of "premise {i}"? Choose one between A and B.'
                         f"\nA: first {i}.\nB: second {i}.", "label": "AB"[i % 2]} for i in range(count)]


def worded_examples(task, per_label):
    """Examples whose texts hold made-up words (64 of them over the examples)."""
    return [{"sentence": f"Text: {' '.join(MADE_UP[(7 * i + j) % 64] for j in range(6))}", "label": label}
            for i, label in enumerate(list(task.labels) * per_label)]


@pytest.mark.parametrize("template", ["olora", "seed"])
def test_renamed_mixture_leaves_no_label_word_constant_and_copy_records_hold_one_option(olora_dir,
                                                                                          template):
    write_task(olora_dir, SST2, {"train": worded_examples(SST2, 10)})
    write_task(olora_dir, COPA, {"train": copa_examples(20)}, labels=["B", "A"])  # labels.json's order
    spec = general_benchmark(olora_dir, train=8, test=2, general_tasks=("sst-2", "copa"))
    plain = prepare.general_records(spec, template, 0)
    spec["general"].update(renamed_share=1.0, copy_records=30)
    mixture = prepare.general_records(spec, template, 0)
    assert mixture["test"] == plain["test"]  # general ability is measured on the tasks' own words
    train = mixture["train"]
    assert Counter(r["skill"] for r in train) == {"sst-2": 16, "copa": 16, curriculum.COPY_TASK: 30}
    own_words = {"Good", "Bad", "A", "B"}
    assert not {r["target"] for r in train} & own_words
    assert len({r["target"] for r in train}) > 20  # drawn per record, no constant answer
    pool = set(MADE_UP) | {"which", "sentence", "effect", "premise", "first", "second", "choose",
                           "between"}  # the words of the texts (not the prompts) that may name
    for record in train:
        assert record["target"] in pool and record["labels"] is None
        if record["skill"] == "copa":  # its text names the options: renamed there too, each its own line
            assert "Choose one between A and B" not in record["input"]
            premise = int(re.search(r"premise (\d+)", record["input"]).group(1))
            right = "first" if premise % 2 == 0 else "second"  # A (even) or B (odd) is right
            assert f"\n{record['target']}: {right} {premise}." in record["input"]
        elif template == "olora":  # the option line lists the renamed target among 2-4 words
            options = record["input"].split("\nOption: ")[1].split(" \n")[0].split(", ")
            assert record["target"] in options and 2 <= len(options) <= 4
        if record["skill"] == curriculum.COPY_TASK:
            text = record["input"].split("\n")[-2] if template == "olora" else record["input"].split("]. ")[1]
            assert [w for w in text.split() if w not in curriculum.FILLERS] == [record["target"]]
    half = prepare.general_records({**spec, "general": {**spec["general"], "renamed_share": 0.5,
                                                       "copy_records": 0}}, template, 0)
    renamed = sum(r["target"] not in own_words for r in half["train"])
    assert 8 <= renamed <= 24 and half == prepare.general_records(
        {**spec, "general": {**spec["general"], "renamed_share": 0.5, "copy_records": 0}}, template, 0)


def test_renaming_a_copa_text_without_its_options_names_the_record(olora_dir):
    unnamed = [{"sentence": f"no options {' '.join(MADE_UP)}", "label": "AB"[i % 2]} for i in range(8)]
    write_task(olora_dir, COPA, {"train": unnamed})
    spec = general_benchmark(olora_dir, train=4, test=2, general_tasks=("copa",))
    spec["general"]["renamed_share"] = 1.0
    with pytest.raises(ValueError, match="general task copa record 0: COPA text without"):
        prepare.general_records(spec, "olora", 0)


def test_too_few_words_to_draw_new_label_names_from_is_refused(olora_dir):
    write_task(olora_dir, SST2, {"train": examples(SST2, 10)})  # texts: "Text: Good example 3"
    spec = general_benchmark(olora_dir, train=8, test=2, general_tasks=("sst-2",))
    spec["general"]["copy_records"] = 5
    with pytest.raises(ValueError, match="benchmark.general: its texts hold 1 distinct words"):
        prepare.general_records(spec, "olora", 0)


def test_general_mixture_from_the_hub_uses_each_tasks_train_split():
    requested = []

    def fake_load(path, name, split):
        requested.append(split)
        return [{"sentence": f"s{i}", "label": i % 2} for i in range(20)]

    mixture = prepare.general_records({"name": "hub", "general": {
        "tasks": ["sst-2"], "train_per_class": 5, "test_per_class": 2}}, "olora", 0,
        load_dataset=fake_load)
    assert requested == ["train"]
    assert len(mixture["train"]) == 10 and len(mixture["test"]) == 4
    assert mixture["test"][0]["input"].startswith("Task:SC\nDataset:SST-2\n")


def test_a_task_without_a_train_file_splits_its_test_file_disjointly(olora_dir):
    write_task(olora_dir, DBPEDIA, {"test": examples(DBPEDIA, 6)})
    spec = {**benchmark(olora_dir, train=4, test=2), "from_test_file": ["dbpedia"]}
    records = prepare.real_records(spec, "dbpedia", "seed", 0)
    assert Counter(r["target"] for r in records["train"]) == {label: 4 for label in DBPEDIA.labels}
    assert Counter(r["target"] for r in records["test"]) == {label: 2 for label in DBPEDIA.labels}
    assert not {r["input"] for r in records["train"]} & {r["input"] for r in records["test"]}
    own = {**spec, "tasks": [{"name": "dbpedia", "train_per_class": 3}]}  # the task's own count
    assert len(prepare.real_records(own, "dbpedia", "seed", 0)["train"]) == 3 * 14
    with pytest.raises(FileNotFoundError, match="train.json"):  # not listed: the train file is needed
        prepare.real_records(benchmark(olora_dir, train=4, test=2), "dbpedia", "seed", 0)


# --------------------------------------------------------------------------- O-LoRA's own prompts

OLORA_PROMPT = None if shared_dir() is None else shared_dir() / "reference" / "olora_prompt"
# every O-LoRA category and one task of it (COPA: no instruction)
CATEGORY_TASKS = {"SC": "sst-2", "TC": "agnews", "NLI": "mnli", "QQP": "qqp", "BoolQA": "boolqa",
                  "MultiRC": "multirc", "WiC": "wic", "COPA": "copa"}


def olora_reference_prompts(root, task, split):
    """The prompts O-LoRA's own loader and collator build for one split, by sentence."""
    import importlib.util
    import sys
    from types import SimpleNamespace

    def load(name):
        import dataclasses
        import typing

        from transformers import PreTrainedTokenizerBase
        from transformers.utils import PaddingStrategy

        spec = importlib.util.spec_from_file_location(f"olora_{name}", OLORA_PROMPT / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        # what its star import of transformers' data_collator gave in the transformers it used
        module.__dict__.update({key: getattr(typing, key) for key in ("Any", "Optional", "Union")},
                               dataclass=dataclasses.dataclass, PaddingStrategy=PaddingStrategy,
                               PreTrainedTokenizerBase=PreTrainedTokenizerBase)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return module

    dataset, collator = load("uie_dataset_lora"), load("uie_collator")
    builder = dataset.UIEInstructions
    config = SimpleNamespace(num_examples=0, instruction_strategy="single", over_sampling=False)
    config.instructions = dataset.UIEConfig._parse_instruction(None, OLORA_PROMPT / "instruction_config.json")
    fake = SimpleNamespace(config=config)
    for method in ("_load_dataset", "_get_instruction", "_sampling_dataset"):
        setattr(fake, method, getattr(builder, method).__get__(fake))
    folder = Path(root) / task.olora_path
    category, name = task.olora_path.split("/")
    loader = getattr(builder, f"load_{category}_dataset")
    examples = loader(fake, str(folder / f"{split}.json"), str(folder / "labels.json"), name,
                      "full", None, split)
    collate = collator.DataCollatorForUIE(tokenizer=None, add_task_name=True, add_dataset_name=True)
    return {example["Instance"]["sentence"]: collate.get_instruction(example) for example in examples}


def assert_prompts_equal_olora(root, names, splits=("train", "test")):
    compared = 0
    for name in names:
        info = tasks.task(name)
        for split in splits:
            if not (Path(root) / info.olora_path / f"{split}.json").exists():
                continue
            expected = olora_reference_prompts(root, info, split)
            records, _ = sources.read_olora_split(root, info, split)
            labels = prepare.prompt_labels({"name": "olora", "olora_dir": str(root)}, info, "olora")
            for record in records:
                prompt = prepare.apply_template("olora", task=info.olora_path.split("/")[1],
                                             category=info.category, instruction=info.instruction,
                                             labels=labels, text=record["sentence"])
                assert prompt == expected[record["sentence"]], (name, split, record)
                compared += 1
    return compared


@pytest.mark.skipif(OLORA_PROMPT is None, reason="../shared (O-LoRA's loader) is not present")
def test_olora_template_equals_olora_s_own_prompts_on_records_the_test_writes(tmp_path):
    root = tmp_path / "CL_Benchmark"
    for category, name in CATEGORY_TASKS.items():
        info = tasks.task(name)
        labels = list(info.olora_labels or info.labels)
        rows = [{"sentence": f"{category} text {i}: with {{braces}} and \"quotes\"\n", "label": label}
                for i, label in enumerate(labels * 2)]
        write_task(root, info, {"train": rows, "test": rows[:2]}, labels=labels[::-1])  # file order
    labels = sum(len(tasks.task(name).labels) for name in CATEGORY_TASKS.values())
    assert assert_prompts_equal_olora(root, CATEGORY_TASKS.values()) == 2 * labels + 2 * 8


@pytest.mark.skipif(OLORA_PROMPT is None or not (shared_dir() / "data" / "olora_cl_benchmark").is_dir(),
                    reason="../shared (O-LoRA's loader and the real subset) is not present")
def test_every_prompt_on_the_shared_subset_is_byte_identical_to_olora_s():
    root = shared_dir() / "data" / "olora_cl_benchmark"
    names = [name for name, info in tasks.TASKS.items() if (root / info.olora_path).is_dir()]
    assert len(names) >= 12
    assert assert_prompts_equal_olora(root, names) > 50000
