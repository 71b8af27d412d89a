"""Prepared data: prompt templates and the normalised JSONL records every later stage reads.

A prepared record is ``{"id", "task", "input", "target", "labels"}``: ``input`` is the text after
the prompt template, ``target`` the answer string, ``labels`` the task's label set (``None`` for
open-ended examples: the general-ability set, TRACE); a general record names its source task in
``skill``. Real tasks add ``answerable`` (False for MNLI's "-" items, which stay in the test set
but can never be scored correct); TRACE's add ``metric``, the :mod:`asvd.evaluation.scoring` metric of
their task (absent: exact match).
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Callable, Mapping, Sequence

from asvd.data import curriculum, sources, synthetic, tasks
from asvd.io import read_jsonl, write_jsonl

log = logging.getLogger(__name__)

GENERAL = "general"
TEMPLATES = ("seed", "olora")
REQUIRED_KEYS = ("id", "task", "input", "target", "labels")


def apply_template(template: str, *, task: str, category: str, instruction: str | None,
                   labels: Sequence[str], text: str) -> str:
    """Render a classification prompt in the seed (paper) or O-LoRA style.

    ``olora`` is byte for byte what O-LoRA's loader and collator build (task and dataset prefix
    on, as in its scripts): ``Task:<category>\nDataset:<dataset>\n<instruction> Choose one from
    the option.\nOption: <labels> \n<text>\nAnswer:``. ``instruction=None`` drops the
    instruction, and in O-LoRA's form the option line with it (COPA's prompt has neither).
    """
    if template == "seed":
        lead = "" if instruction is None else f"{instruction} "
        return f"{lead}Choose one from the following options [{', '.join(labels)}]. {text}"
    if template == "olora":
        question = ("" if instruction is None else
                    f"{instruction} Choose one from the option.\nOption: {', '.join(labels)} \n")
        return f"Task:{category}\nDataset:{task}\n{question}{text}\nAnswer:"
    raise ValueError(f"data.template: unknown template {template!r} (expected one of {TEMPLATES})")


def synthetic_instruction(name: str, position: str) -> str:
    return f"Task {name} : what is the class of the {position} symbol ?"


def _general_prompt(example: Mapping, template: str, classes: Sequence[str]) -> dict:
    """A general example's input, target and labels: ``instructed`` ones are asked as the tasks
    are (``Task general : ...``), every other skill as ``<skill> : <text>``."""
    if example["skill"] == synthetic.INSTRUCTED:
        prompt = apply_template(template, task=GENERAL, category="synthetic", labels=classes,
                                instruction=synthetic_instruction(GENERAL, example["position"]),
                                text=example["text"])
        return {"input": prompt, "target": example["target"], "labels": list(classes)}
    return {"input": f"{example['skill']} : {example['text']}", "target": example["target"],
            "labels": None}


def synthetic_records(benchmark: Mapping, task: str, template: str, seed: int) -> dict[str, list[dict]]:
    """Prepared train/test records of one synthetic task (or of the general set)."""
    spec = {key: value for key, value in benchmark.items() if key != "name"}
    generated = synthetic.generate(seed=seed, **spec)
    if task == GENERAL:
        return {
            split: [{"id": f"{GENERAL}-{split}-{i}", "task": GENERAL, "skill": ex["skill"],
                     **_general_prompt(ex, template, generated["classes"])}
                    for i, ex in enumerate(examples)]
            for split, examples in generated["general"].items()
        }
    if task not in generated["tasks"]:
        raise ValueError(f"task {task!r} is not in benchmark.tasks ({sorted(generated['tasks'])})")
    position = next(t["position"] for t in benchmark["tasks"] if t["name"] == task)
    labels = generated["classes"]
    return {
        split: [
            {"id": f"{task}-{split}-{i}", "task": task,
             "input": apply_template(template, task=task, category="synthetic",
                                     instruction=synthetic_instruction(task, position),
                                     labels=labels, text=ex["text"]),
             "target": ex["target"], "labels": labels}
            for i, ex in enumerate(examples)
        ]
        for split, examples in generated["tasks"][task].items()
    }


def task_prompter(info: tasks.Task, template: str, labels: Sequence[str]) -> Callable[[str], str]:
    """``text -> prompt`` for one real task under ``template`` (its instruction, ``labels`` as
    the options)."""
    dataset = info.olora_path.rsplit("/", 1)[-1]
    instruction = info.seed_instruction if template == "seed" else info.instruction
    return lambda text: apply_template(template, task=dataset, category=info.category,
                                       instruction=instruction, labels=labels, text=text)


def prompt_labels(benchmark: Mapping, info: tasks.Task, template: str) -> list[str]:
    """The options in the order a prompt lists them: O-LoRA's prompts follow the task's
    ``labels.json`` (read from the directory, or the order it is known to have for the hub);
    the seed template keeps the registry's order."""
    if template != "olora":
        return list(info.labels)
    if benchmark["name"] == "olora":
        return sources.olora_labels(benchmark["olora_dir"], info)
    return list(info.olora_labels or info.labels)


def real_records(benchmark: Mapping, task: str, template: str, seed: int,
                 load_dataset=None) -> dict[str, list[dict]]:
    """Prepared train/test records of one real task from O-LoRA's directory or the hub.

    A task's entry in ``benchmark.tasks`` may set its own ``train_per_class`` /
    ``test_per_class`` (a 14-class task at the others' count would dominate the sequence's cost).
    A task in ``benchmark.from_test_file`` (an O-LoRA copy without a train file, as the shared
    subset's dbpedia) draws both parts from its test file, disjointly, class by class.
    """
    info = tasks.task(task)
    labels = prompt_labels(benchmark, info, template)
    prompt = task_prompter(info, template, labels)
    entry = next((t for t in benchmark.get("tasks", []) if t["name"] == task), {})
    per_class = {split: entry.get(f"{split}_per_class", benchmark[f"{split}_per_class"])
                 for split in ("train", "test")}
    prepared, drawn = {}, {}
    if benchmark["name"] == "olora" and task in (benchmark.get("from_test_file") or []):
        examples = sources.olora_examples(benchmark["olora_dir"], info, "test",
                                          per_class["train"] + per_class["test"], seed)
        drawn = dict(zip(("train", "test"), sources.held_out_split(
            examples, per_class["train"], per_class["test"])))
    for split in ("train", "test"):
        if split in drawn:
            examples = drawn[split]
        elif benchmark["name"] == "olora":
            examples = sources.olora_examples(benchmark["olora_dir"], info, split, per_class[split],
                                              seed)
        else:
            examples = sources.hub_examples(info, split, per_class[split], seed,
                                            load_dataset=load_dataset,
                                            overrides=(benchmark.get("hub") or {}).get(task))
        prepared[split] = [
            {"id": f"{task}-{split}-{i}", "task": task,
             "input": prompt(ex["sentence"]), "target": ex["label"], "labels": labels,
             "answerable": ex["label"] != sources.UNANSWERABLE}
            for i, ex in enumerate(examples)
        ]
    return prepared


def general_records(benchmark: Mapping, template: str, seed: int,
                    load_dataset=None) -> dict[str, list[dict]]:
    """The general-ability mixture of a real benchmark: tasks outside the study, one shared set.

    ``benchmark.general`` names the tasks and how many examples per class go to the mixture's
    training part (the base model's instruction tuning) and its held-out test part (general
    ability, evaluated after every task). Both parts are drawn from one split of each task (O-LoRA's
    copy may ship only one), disjointly; prompts are the tasks' own, answers their label strings.
    The training part may also rename label words and add copy records
    (:mod:`asvd.data.curriculum`); the test part is always the tasks' own.
    """
    spec = benchmark["general"]
    prompters, train_parts, test = {}, {}, []
    for name in spec["tasks"]:
        info = tasks.task(name)
        per_class = spec["train_per_class"] + spec["test_per_class"]
        if benchmark["name"] == "olora":
            split = sources.olora_general_split(benchmark["olora_dir"], info)
            examples = sources.olora_examples(benchmark["olora_dir"], info, split, per_class, seed)
        else:
            examples = sources.hub_examples(info, "train", per_class, seed, load_dataset=load_dataset,
                                            overrides=(benchmark.get("hub") or {}).get(name))
        examples = [e for e in examples if e["label"] != sources.UNANSWERABLE]
        train_parts[name], held_out = sources.held_out_split(
            examples, spec["train_per_class"], spec["test_per_class"])
        labels = prompt_labels(benchmark, info, template)
        prompters[name] = (labels, lambda text, options, info=info:
                           task_prompter(info, template, options)(text))
        test += [{"task": GENERAL, "skill": name, "input": prompters[name][1](ex["sentence"], labels),
                  "target": ex["label"], "labels": None} for ex in held_out]

    def copy_prompt(text: str, options: Sequence[str]) -> str:
        return apply_template(template, task=curriculum.COPY_TASK, category="copy",
                              instruction=curriculum.COPY_INSTRUCTION, labels=options, text=text)

    train = [{"task": GENERAL, **record, "labels": None} for record in
             curriculum.option_curriculum(spec, seed, prompters, train_parts, copy_prompt)]
    random.Random(seed).shuffle(train)  # tasks interleaved in every batch
    return {split: [{"id": f"{GENERAL}-{split}-{i}", **record} for i, record in enumerate(rows)]
            for split, rows in (("train", train), ("test", test))}


def trace_records(benchmark: Mapping, task: str, seed: int) -> dict[str, list[dict]]:
    """Prepared train/test records of one TRACE task; its prompts come pre-formatted."""
    metric = tasks.trace_metric(task)
    prepared = {}
    for split in ("train", "test"):
        examples = sources.trace_examples(benchmark["trace_dir"], task, split,
                                          benchmark.get(f"{split}_per_task"), seed)
        prepared[split] = [
            {"id": f"{task}-{split}-{i}", "task": task, "input": ex["prompt"], "target": ex["answer"],
             "labels": None, "metric": metric}
            for i, ex in enumerate(examples)
        ]
    return prepared


def split_stats(records: Sequence[Mapping]) -> dict:
    """Size, per-label counts (classification), unanswerable items and repeated inputs (records
    whose prompt an earlier record of the split already has) of a prepared split."""
    stats = {"records": len(records),
             "unanswerable": sum(not r.get("answerable", True) for r in records),
             "duplicates": len(records) - len({r["input"] for r in records})}
    if all(record["labels"] is not None for record in records):
        counts: dict[str, int] = {}
        for record in records:
            counts[record["target"]] = counts.get(record["target"], 0) + 1
        stats["labels"] = dict(sorted(counts.items()))
    else:
        stats["mean_target_chars"] = sum(len(r["target"]) for r in records) / len(records)
    return stats


def prepare_task(benchmark: Mapping, task: str, template: str, seed: int,
                 train_out: str | Path, test_out: str | Path, load_dataset=None) -> dict:
    """Write one task's prepared train/test JSONL files; return per-split stats (with test
    prompts that also occur in training counted; repeats and overlaps are warned about).

    Every record is read and checked before either file is written.
    """
    name = benchmark.get("name")
    if name == "synthetic":
        records = synthetic_records(benchmark, task, template, seed)
    elif name in ("olora", "hub") and task == GENERAL:
        records = general_records(benchmark, template, seed, load_dataset=load_dataset)
    elif name in ("olora", "hub"):
        records = real_records(benchmark, task, template, seed, load_dataset=load_dataset)
    elif name == "trace":
        records = trace_records(benchmark, task, seed)
    else:
        raise ValueError(f"benchmark.name: unsupported benchmark {name!r} "
                         "(expected synthetic, olora, hub or trace)")
    write_jsonl(train_out, records["train"])
    write_jsonl(test_out, records["test"])
    stats = {split: split_stats(rows) for split, rows in records.items()}
    trained = {r["input"] for r in records["train"]}
    stats["test"]["also_in_train"] = sum(r["input"] in trained for r in records["test"])
    for split, found in stats.items():
        if found["duplicates"]:
            log.warning("%s %s: %d of %d records repeat an earlier record's prompt", task, split,
                        found["duplicates"], found["records"])
    if stats["test"]["also_in_train"]:
        log.warning("%s: %d of %d test prompts also occur in training: they measure memory, not "
                    "generalisation", task, stats["test"]["also_in_train"], stats["test"]["records"])
    return stats


def load_records(path: str | Path) -> list[dict]:
    """Read prepared records, failing with the file and record number on a malformed one."""
    records = read_jsonl(path)
    if not records:
        raise ValueError(f"{path}: no records")
    for number, record in enumerate(records, start=1):
        missing = [key for key in REQUIRED_KEYS if key not in record]
        if missing:
            raise ValueError(f"{path}: record {number} lacks keys {missing}")
        if not isinstance(record["input"], str) or not isinstance(record["target"], str):
            raise ValueError(f"{path}: record {number} ({record['id']}): input/target must be strings")
    return records
