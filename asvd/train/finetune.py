"""One continual task of any method: load the previous checkpoint, put the method together
(the subspace constraint, EWC / LwF penalties, replay or the joint set, LoRA adapters), train
with the shared loop and write the checkpoint and its log."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import torch

from asvd.baselines.lora import (
    STATE_FILE,
    OrthogonalLoRA,
    adapter_seed,
    attach_lora,
    lora_layers,
    next_state,
    read_state,
)
from asvd.baselines.regularizers import (
    FISHER_FILE,
    DistillationLoss,
    EWCPenalty,
    fisher_diagonal,
    online_fisher,
    read_fisher,
)
from asvd.baselines.replay import replay_mix
from asvd.data.prepare import load_records
from asvd.io import verify_checksums, write_json
from asvd.method import ranks
from asvd.method.constraint import OrthogonalSubspace
from asvd.method.importance import importance_scores
from asvd.method.svd import cached_svd
from asvd.method.targets import find_targets
from asvd.methods import Method
from asvd.train.loop import TrainSettings, sample_batches, train
from asvd.train.models import load_checkpoint, save_checkpoint
from asvd.train.parallel import accelerator as make_accelerator
from asvd.train.parallel import gathered_state, launch, process_count
from asvd.train.resume import fingerprint

log = logging.getLogger(__name__)


def build_constraint(model, tokenizer, method: Method, modules: Mapping[str, torch.nn.Module],
                     task_index: int, task_count: int, svd_path: str | Path | None,
                     importance_records: Sequence[Mapping] | None, settings: TrainSettings,
                     seed: int) -> OrthogonalSubspace | None:
    """The constraint a method asks for on this task, or None for plain fine-tuning."""
    if not method.constrained_on(task_index):
        return None
    rule = ranks.from_config(method.rank_rule, task=task_index, tasks=task_count)
    importance = None
    if rule.needs_importance:
        batches = sample_batches(model, tokenizer, importance_records, settings, rule.samples, seed)
        importance = importance_scores(model, modules, batches, rule.granularity)
        unimportant = rule.unimportant_units(importance)
        if unimportant:
            log.warning("importance <= 0 in %s: they keep only mrr = %s of their directions",
                        unimportant, rule.mrr)
    svd = cached_svd(svd_path, model, modules)
    return OrthogonalSubspace(model, targets=method.target_modules, rank_rule=rule,
                              projection=method.projection, svd=svd, importance=importance,
                              project=method.project)


def build_penalties(model, tokenizer, method: Method, task_index: int,
                    previous_records: Sequence[Mapping], settings: TrainSettings, seed: int,
                    checkpoint: str | Path) -> tuple[list, dict]:
    """The loss terms a method's ``ewc`` / ``lwf`` blocks add from the second task on, and the
    files the new checkpoint carries for them (EWC: the Fisher accumulated over every earlier
    task, continuing the one ``checkpoint``, the task's starting point, carries)."""
    if task_index == 1:
        return [], {}
    terms, files = [], {}
    if method.ewc:
        spec = method.ewc
        batches = sample_batches(model, tokenizer, previous_records, settings,
                                  spec["fisher_samples"], seed)
        fisher = online_fisher(read_fisher(checkpoint), fisher_diagonal(model, batches),
                               spec.get("decay", 1.0))
        terms.append(EWCPenalty(model, fisher, spec["strength"]))
        files[FISHER_FILE] = fisher
    if method.lwf:
        terms.append(DistillationLoss(model, method.lwf["strength"], method.lwf["temperature"]))
    return terms, files


@dataclass(frozen=True)
class TaskInputs:
    """The files one task's training reads.

    ``previous_train_file`` holds the previous task's training samples, which importance (if the
    rank rule needs it) and EWC's Fisher use; the first task uses its own samples for importance
    (docs/method.md §3), as does None. ``svd_path`` is the cached SVD of ``checkpoint`` the
    constraint starts from. ``earlier_train_files`` (task -> train file, in training order) feed
    a method's replay memory or, for a ``joint`` method (MTL), join this task's data.
    ``base_checkpoint`` is where a shared LoRA adapter (SeqLoRA) is attached again.
    """

    checkpoint: str | Path
    train_file: str | Path
    previous_train_file: str | Path | None = None
    svd_path: str | Path | None = None
    earlier_train_files: Mapping[str, str | Path] = field(default_factory=dict)
    base_checkpoint: str | Path | None = None

    def files(self) -> list[str | Path]:
        """Every file given, in the order the resume fingerprint hashes them (another order would
        make the saved states of killed jobs unusable)."""
        files = [self.checkpoint, self.train_file, self.previous_train_file, self.base_checkpoint,
                 *self.earlier_train_files.values(), self.svd_path]
        return [path for path in files if path]


@dataclass(frozen=True)
class TaskPosition:
    """Where a task stands in its order: ``index`` (1-based) decides what a method does on it
    (constraint, penalties from the second task on, adapter seed) and, with ``count``, the rank
    rule's schedule."""

    task: str
    index: int
    count: int


def finetune_task(inputs: TaskInputs, position: TaskPosition, method: Mapping, settings: Mapping,
                  seed: int, out_dir: str | Path, log_json: str | Path,
                  resume_file: str | Path | None = None, gpus: int = 0) -> dict:
    """Train one task of a sequence from the previous checkpoint; write checkpoint and log.

    ``resume_file`` keeps the intra-task state of a job that may be killed (:mod:`asvd.train.resume`);
    it is removed once the outputs are written.
    ``train.num_processes`` processes (by default one per GPU of the job's ``gpus`` that torch
    sees) train data-parallel (:mod:`asvd.train.parallel`); the main process writes.
    """
    declared = Method.from_config(method)
    settings = {**settings, "lr": settings.get("lr", TrainSettings.lr) * declared.lr_scale}
    train_settings = TrainSettings.from_config(settings)
    processes = process_count(train_settings.num_processes, gpus)
    unsharded = declared.whole_model_copies
    if train_settings.sharded(processes) and unsharded:
        raise ValueError(f"train.distributed: fsdp does not support a method with {unsharded} "
                         f"(they hold whole copies of the weights); use ddp")
    arguments = {"inputs": inputs, "position": position, "method": method, "settings": settings,
                 "seed": seed, "out_dir": out_dir, "log_json": log_json, "resume_file": resume_file}
    return launch(_finetune_task_process, arguments, processes)


def _finetune_task_process(inputs: TaskInputs, position: TaskPosition, method: Mapping,
                           settings: Mapping, seed: int, out_dir: str | Path, log_json: str | Path,
                           resume_file: str | Path | None) -> dict:
    """One process of :func:`finetune_task` (the only one, or one rank of several)."""
    block, method = method, Method.from_config(method)
    train_settings = TrainSettings.from_config(settings)
    accelerator = make_accelerator()
    lora = method.lora
    lora_state = read_state(inputs.checkpoint) if lora else {}
    continue_shared = method.shares_lora and bool(lora_state)
    if continue_shared:  # its adapter state is used, its weights are not loaded (and so not checked)
        verify_checksums(inputs.checkpoint)
    model, tokenizer = load_checkpoint(inputs.base_checkpoint if continue_shared else inputs.checkpoint)
    model.to(accelerator.device)  # before the constraint's bases are placed beside its weights
    records = load_records(inputs.train_file)
    previous_records = load_records(inputs.previous_train_file) if inputs.previous_train_file else records
    earlier = {name: load_records(path) for name, path in inputs.earlier_train_files.items()}
    if method.schedule == "joint":  # MTL: every task of the order in one training set
        records = [record for rows in earlier.values() for record in rows] + records
    elif method.replay:
        records = replay_mix(records, earlier, method.replay["ratio"],
                             method.replay.get("buffer_per_task"), seed, position.index)
    targets = find_targets(model, method.target_modules)
    constraint = build_constraint(model, tokenizer, method, targets, position.index, position.count,
                                  inputs.svd_path, previous_records, train_settings, seed)
    if not method.train_other_params:
        target_weights = {id(m.weight) for m in targets.values()}
        for param in model.parameters():
            param.requires_grad_(id(param) in target_weights)
    penalties, extra_files = build_penalties(model, tokenizer, method, position.index, previous_records,
                                             train_settings, seed, inputs.checkpoint)
    if lora:
        lora_targets = list(find_targets(model, lora.get("target_modules", "auto")))
        model = attach_lora(model, lora, lora_targets, adapter_seed(seed, position.index),
                            lora_state if continue_shared else None)
        layers = lora_layers(model, lora_targets)
        if lora.get("orthogonal"):
            old_a = {name: lora_state[f"{name}.A"] for name in lora_targets if f"{name}.A" in lora_state}
            penalties.append(OrthogonalLoRA(layers, old_a, **lora["orthogonal"]))
    trained_parameters = sum(p.numel() for p in model.parameters() if p.requires_grad)
    resume_key = fingerprint(settings, seed, inputs.files(), method=block, task=position.task,
                             step=position.index)
    result = train(model, tokenizer, records, train_settings, seed, constraint=constraint,
                   desc=f"{position.task} ({position.index}/{position.count})", penalties=penalties,
                   resume_file=resume_file, resume_key=resume_key, accelerator=accelerator)
    if lora:
        extra_files[STATE_FILE] = next_state(layers, lora_state, lora["per_task"])
        model = model.merge_and_unload()
    result.update({
        "task": position.task,
        "step": position.index,
        "replayed": sum("replayed_from" in r for r in records),
        "ranks": {name: min(m.weight.shape) for name, m in targets.items()},
        "frozen_ranks": constraint.frozen_ranks() if constraint else {name: 0 for name in targets},
        **(constraint.importance_report() if constraint else {}),
        "max_violation": constraint.max_violation() if constraint else 0.0,
        "violation": constraint.violations() if constraint else {},
        "trained_parameters": trained_parameters,
    })
    result["processes"] = accelerator.num_processes
    sharded = train_settings.sharded(accelerator.num_processes)
    whole = gathered_state(model)[0] if sharded else None  # every process takes part
    if accelerator.is_main_process:
        save_checkpoint(model, tokenizer, out_dir, extra_tensors=extra_files, state_dict=whole)
        write_json(log_json, result)
        if resume_file:
            Path(resume_file).unlink(missing_ok=True)
    if accelerator.num_processes > 1:  # every rank waits for the writes, then leaves the group
        accelerator.wait_for_everyone()
        accelerator.end_training()
    return result
