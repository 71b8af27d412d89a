"""One continual task of any method: load where the task starts, assemble the method from its
pieces (:mod:`asvd.train.pieces`: the subspace constraint, freezing, replay or the joint set,
EWC / LwF, LoRA), train with the shared loop and write the checkpoint and its log."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

from asvd.data.prepare import load_records
from asvd.io import remove_with_emptied_folders
from asvd.method.targets import find_targets
from asvd.method_config import Method
from asvd.train.loop import TrainSettings, train
from asvd.train.models import load_checkpoint, save_checkpoint
from asvd.train.parallel import accelerator as make_accelerator
from asvd.train.parallel import gathered_state, launch, process_count
from asvd.train.pieces import TaskContext, TaskInputs, TaskPosition, assemble
from asvd.train.resume import fingerprint
from asvd.train_log import TaskLog

__all__ = ["TaskInputs", "TaskPosition", "finetune_task"]


def finetune_task(inputs: TaskInputs, position: TaskPosition, method: Mapping, settings: Mapping,
                  seed: int, out_dir: str | Path, log_json: str | Path,
                  resume_file: str | Path | None = None, gpus: int = 0) -> dict:
    """Train one task of a sequence from the previous checkpoint; write checkpoint and log.

    ``method`` is the method's config block, ``settings`` its train block. ``resume_file`` keeps
    the intra-task state of a job that may be killed (:mod:`asvd.train.resume`); it is removed
    once the outputs are written. ``train.num_processes`` processes (by default one per GPU of
    the job's ``gpus`` that torch sees) train data-parallel (:mod:`asvd.train.parallel`); the
    main process writes.
    """
    parsed = Method.from_config(method)
    settings = {**settings, "lr": settings.get("lr", TrainSettings.lr) * parsed.lr_scale}
    train_settings = TrainSettings.from_config(settings)
    processes = process_count(train_settings.num_processes, gpus)
    unsharded = parsed.whole_model_copies
    if train_settings.sharded(processes) and unsharded:
        raise ValueError(f"train.distributed: fsdp does not support a method with {unsharded} "
                         f"(they hold whole copies of the weights); use ddp")
    resume_key = fingerprint(settings, seed, inputs.files(), method=method, task=position.task,
                             step=position.index)
    arguments = {"inputs": inputs, "position": position, "method": parsed,
                 "settings": train_settings, "seed": seed, "out_dir": out_dir,
                 "log_json": log_json, "resume_file": resume_file, "resume_key": resume_key}
    return launch(_finetune_task_process, arguments, processes)


def _finetune_task_process(inputs: TaskInputs, position: TaskPosition, method: Method,
                           settings: TrainSettings, seed: int, out_dir: str | Path,
                           log_json: str | Path, resume_file: str | Path | None,
                           resume_key: str) -> dict:
    """One process of :func:`finetune_task` (the only one, or one rank of several): every
    piece's hooks at their point of the task (:class:`asvd.train.pieces.Piece`)."""
    accelerator = make_accelerator()
    pieces = assemble(method)
    starts = [piece.start_from(inputs) for piece in pieces]  # each piece reads what it needs
    start = next((path for path in starts if path), inputs.checkpoint)
    model, tokenizer = load_checkpoint(start)
    model.to(accelerator.device)  # before the constraint's bases are placed beside its weights
    records = load_records(inputs.train_file)
    context = TaskContext(
        method=method, position=position, inputs=inputs, settings=settings, seed=seed,
        tokenizer=tokenizer, targets=find_targets(model, method.target_modules),
        previous_records=(load_records(inputs.previous_train_file)
                          if inputs.previous_train_file else records),
        earlier={name: load_records(path) for name, path in inputs.earlier_train_files.items()})
    for piece in pieces:
        records = piece.records(context, records)
    for piece in pieces:
        model = piece.prepare(context, model)
    constraints = [piece.constraint for piece in pieces if piece.constraint is not None]
    if len(constraints) > 1:
        raise ValueError(f"{len(constraints)} pieces of one method constrain its steps; one may")
    constraint = constraints[0] if constraints else None
    trained_parameters = sum(p.numel() for p in model.parameters() if p.requires_grad)
    result = train(model, tokenizer, records, settings, seed, constraint=constraint,
                   desc=f"{position.task} ({position.index}/{position.count})",
                   penalties=[term for piece in pieces for term in piece.loss_terms()],
                   resume_file=resume_file, resume_key=resume_key, accelerator=accelerator)
    for piece in pieces:
        model = piece.finish(context, model)
    result.update({
        "task": position.task,
        "step": position.index,
        "replayed": sum("replayed_from" in r for r in records),
        "ranks": {name: min(m.weight.shape) for name, m in context.targets.items()},
        **{key: value for piece in pieces for key, value in piece.log(context).items()},
        "trained_parameters": trained_parameters,
        "processes": accelerator.num_processes,
    })
    log = TaskLog.from_record(result)
    _write(model, tokenizer, pieces, log, settings, accelerator, out_dir, log_json, resume_file)
    return log.record()


def _write(model, tokenizer, pieces, log: TaskLog, settings: TrainSettings, accelerator,
           out_dir: str | Path, log_json: str | Path, resume_file: str | Path | None) -> None:
    """The checkpoint (with every piece's tensors) and the log, from the main process."""
    sharded = settings.sharded(accelerator.num_processes)
    whole = gathered_state(model)[0] if sharded else None  # every process takes part
    if accelerator.is_main_process:
        extra = {name: tensors for piece in pieces for name, tensors in piece.tensors().items()}
        save_checkpoint(model, tokenizer, out_dir, extra_tensors=extra, state_dict=whole)
        log.write(log_json)
        if resume_file:  # its folders too, up to the one it shares with the outputs
            remove_with_emptied_folders(resume_file, os.path.commonpath(
                [Path(resume_file).absolute(), Path(out_dir).absolute()]))
    if accelerator.num_processes > 1:  # every rank waits for the writes, then leaves the group
        accelerator.wait_for_everyone()
        accelerator.end_training()
