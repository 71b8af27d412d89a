"""Training: the base model on the general mixture, and one continual task of any method. One
loop serves all: the subspace constraint only wraps the optimizer, EWC / LwF / O-LoRA add loss
terms (:mod:`asvd.regularizers`, :mod:`asvd.adapters`), replay and MTL change the training set
(:mod:`asvd.replay`), the LoRA methods wrap the model (peft).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch
from tqdm.auto import tqdm

from asvd import ranks
from asvd.adapters import (
    STATE_FILE,
    OrthogonalLoRA,
    adapter_seed,
    attach_lora,
    lora_layers,
    next_state,
    read_state,
)
from asvd.constraint import OrthogonalSubspace
from asvd.data import load_records
from asvd.importance import importance_scores
from asvd.io import verify_checksums, write_json
from asvd.parallel import accelerator as make_accelerator
from asvd.parallel import (
    gathered_state,
    global_batch_loss,
    label_tokens,
    launch,
    process_count,
    scatter_state,
    shard,
    shard_model,
)
from asvd.models import (
    build_seq2seq,
    build_word_tokenizer,
    check_lengths,
    is_causal,
    load_checkpoint,
    resolve_pretrained,
    save_checkpoint,
    warm_start_encoder_decoder,
)
from asvd.regularizers import (
    FISHER_FILE,
    DistillationLoss,
    EWCPenalty,
    fisher_diagonal,
    online_fisher,
    read_fisher,
)
from asvd.replay import replay_mix
from asvd.resume import fingerprint, load_state, save_state
from asvd.runtime import environment
from asvd.svd import cached_svd
from asvd.targets import find_targets

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation hyper-parameters (config block ``train`` or ``base_model.train``)."""

    epochs: float = 1.0
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.0
    max_grad_norm: float = 1.0
    max_source_length: int = 128
    max_target_length: int = 16
    log_every: int = 10
    gradient_checkpointing: bool = False
    checkpoint_every: int = 0  # steps between saved intra-task states (0: never; asvd.resume)
    num_processes: int | None = None  # data-parallel processes (None: the job's GPUs; asvd.parallel)
    distributed: str = "ddp"  # several processes: ddp (replicas) or fsdp (FSDP2, sharded rows)

    def __post_init__(self):
        if self.distributed not in ("ddp", "fsdp"):
            raise ValueError(f"train.distributed: {self.distributed!r} (expected ddp or fsdp)")

    def sharded(self, processes: int) -> bool:
        """Whether ``processes`` training processes shard the model (FSDP2) rather than replicate it."""
        return self.distributed == "fsdp" and processes > 1

    @classmethod
    def from_config(cls, block: Mapping) -> "TrainSettings":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(block) - known)
        if unknown:
            raise ValueError(f"train: unknown keys {unknown} (known: {sorted(known)})")
        return cls(**block)


def linear_warmup_decay(warmup: int, total: int):
    """LR factor: linear warm-up over ``warmup`` steps, then linear decay to 0 at ``total``.

    Same schedule as transformers' ``get_linear_schedule_with_warmup``, without importing its
    trainer stack (seconds per job in a many-job workflow).
    """
    def factor(step: int) -> float:
        if step < warmup:
            return step / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))
    return factor


def _encode_causal(tokenizer, records, settings) -> dict[str, torch.Tensor]:
    """Prompt + answer + EOS as one sequence; the prompt and the padding carry no loss."""
    # tokenised exactly as asvd.evaluation.generate tokenises prompts (special tokens included)
    prompts = tokenizer([r["input"] for r in records], truncation=True,
                        max_length=settings.max_source_length)["input_ids"]
    answers = tokenizer([" " + r["target"] for r in records], add_special_tokens=False,
                        truncation=True, max_length=settings.max_target_length)["input_ids"]
    sequences = [p + a + [tokenizer.eos_token_id] for p, a in zip(prompts, answers)]
    width = max(map(len, sequences))
    input_ids = torch.full((len(records), width), tokenizer.pad_token_id)
    labels = torch.full((len(records), width), -100)
    attention = torch.zeros((len(records), width), dtype=torch.long)
    for i, (prompt, sequence) in enumerate(zip(prompts, sequences)):
        input_ids[i, :len(sequence)] = torch.tensor(sequence)
        labels[i, len(prompt):len(sequence)] = torch.tensor(sequence[len(prompt):])
        attention[i, :len(sequence)] = 1
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}


def encode(tokenizer, records: Sequence[Mapping], settings: TrainSettings,
           model) -> dict[str, torch.Tensor]:
    """Tokenise inputs and targets once for ``model``; label padding becomes -100 (no loss).

    A seq2seq label sequence that starts with the decoder's start token (a BERT tokenizer's
    [CLS] in a warm-started encoder-decoder) loses it: the model prepends it when shifting.
    """
    if is_causal(model):
        return _encode_causal(tokenizer, records, settings)
    source = tokenizer([r["input"] for r in records], padding=True, truncation=True,
                       max_length=settings.max_source_length, return_tensors="pt")
    target = tokenizer([r["target"] for r in records], padding=True, truncation=True,
                       max_length=settings.max_target_length, return_tensors="pt")
    ids, mask = target["input_ids"], target["attention_mask"]
    start = model.config.decoder_start_token_id
    if start is not None and ids.shape[1] > 1 and bool((ids[:, 0] == start).all()):
        ids, mask = ids[:, 1:], mask[:, 1:]
    labels = ids.masked_fill(mask == 0, -100)
    return {"input_ids": source["input_ids"], "attention_mask": source["attention_mask"], "labels": labels}


def _check_encoded_lengths(model, data: dict[str, torch.Tensor], settings: TrainSettings,
                           settings_key: str) -> None:
    """The longest encoded prompt and answer fit the model's positions (see check_lengths)."""
    answer = int((data["labels"] != -100).sum(dim=1).max())
    whole = int(data["attention_mask"].sum(dim=1).max())
    prompt = whole - answer if is_causal(model) else whole
    check_lengths(model, (f"{settings_key}.max_source_length", settings.max_source_length, prompt),
                  (f"{settings_key}.max_target_length", settings.max_target_length, answer))


def _trim(batch: dict[str, torch.Tensor], causal: bool) -> dict[str, torch.Tensor]:
    """Drop all-padding columns so a batch costs what its longest example needs.

    The results are contiguous: some models ``view`` their labels (BART's loss).
    """
    src = int(batch["attention_mask"].sum(1).max())
    if causal:  # one right-padded sequence: labels share the input's columns
        return {key: value[:, :src].contiguous() for key, value in batch.items()}
    tgt = int((batch["labels"] != -100).sum(1).max())
    return {"input_ids": batch["input_ids"][:, :src].contiguous(),
            "attention_mask": batch["attention_mask"][:, :src].contiguous(),
            "labels": batch["labels"][:, :tgt].contiguous()}


def train(model, tokenizer, records: Sequence[Mapping], settings: TrainSettings, seed: int,
          constraint: OrthogonalSubspace | None = None, desc: str = "train",
          penalties: Sequence[Callable] = (), resume_file: str | Path | None = None,
          resume_key: str = "", accelerator=None, settings_key: str = "train") -> dict:
    """Train ``model`` on ``records``; return the log (loss curve, steps, seconds, violation).

    Only parameters with ``requires_grad`` are optimised (``finetune_task`` freezes non-targets
    that way when ``train_other_params`` is false). Each of ``penalties`` (see
    :mod:`asvd.regularizers`) adds ``term(model, batch, outputs)`` to the task loss; the logged
    ``loss`` is the task loss alone, ``penalty`` the sum of the terms. With ``resume_file`` the
    state is saved there every ``settings.checkpoint_every`` steps and, when a state saved under
    the same ``resume_key`` exists, training continues from it (:mod:`asvd.resume`).
    Under ``accelerator`` with several processes each trains on its slice of every global batch
    of ``settings.batch_size`` examples with the same result (:mod:`asvd.parallel`); only the main
    process writes the state. ``settings_key`` is the config block ``settings`` came from, named
    in errors.
    """
    accelerator = accelerator or make_accelerator()
    rank, processes = accelerator.process_index, accelerator.num_processes
    if settings.batch_size < processes:
        raise ValueError(f"train.batch_size: {settings.batch_size} is smaller than the "
                         f"{processes} processes that share each batch")
    torch.manual_seed(seed)
    causal = is_causal(model)
    data = encode(tokenizer, records, settings, model)
    _check_encoded_lengths(model, data, settings, settings_key)
    count = len(records)
    steps_per_epoch = math.ceil(count / settings.batch_size)
    total_steps = max(1, math.ceil(settings.epochs * steps_per_epoch))
    if settings.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    model.to(accelerator.device)
    sharded = settings.sharded(processes)
    if sharded:
        shard_model(model, accelerator.device)
        if constraint is not None:
            constraint.rebind(model)
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": settings.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=settings.lr,
    )
    if constraint is not None:  # its gradient projection runs below, before clipping
        constraint.wrap(optimizer, project_gradients=False)
    if sharded:  # already distributed: accelerate must not add DDP on top
        trained, optimizer = model, accelerator.prepare_optimizer(optimizer)
    else:
        trained, optimizer = accelerator.prepare(model, optimizer)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, linear_warmup_decay(int(settings.warmup_ratio * total_steps), total_steps)
    )
    generator = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    penalty_log: list[float] = []
    model.train()
    started = time.perf_counter()
    order = torch.empty(0, dtype=torch.long)
    first_step = 0
    saved = load_state(resume_file, resume_key) if resume_file else None
    if saved is not None:
        if sharded:
            scatter_state(model, optimizer.optimizer, saved["model"], saved["optimizer"])
        else:
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        generator.set_state(saved["data_rng"])
        torch.set_rng_state(saved["torch_rng"])
        order, losses, penalty_log, first_step = (saved["order"], saved["losses"], saved["penalties"],
                                                  saved["step"])
    saved_step = first_step  # the last step whose state is on disk (0: none)
    for step in tqdm(range(first_step, total_steps), desc=desc, mininterval=5, initial=first_step,
                     total=total_steps, disable=not accelerator.is_main_process):
        if len(order) < settings.batch_size:
            order = torch.cat([order, torch.randperm(count, generator=generator)])
        index, order = order[: settings.batch_size], order[settings.batch_size:]
        mine = shard(index, rank, processes)
        batch = _trim({key: value[mine].to(accelerator.device) for key, value in data.items()}, causal)
        outputs = trained(**batch)
        loss = objective = outputs.loss
        if processes > 1:
            tokens = label_tokens(batch["labels"], causal)
            objective = global_batch_loss(loss, tokens, label_tokens(data["labels"][index], causal),
                                          processes)
            loss = accelerator.reduce(objective.detach(), "mean")  # the global batch's loss
        if penalties:
            extra = sum(term(model, batch, outputs) for term in penalties)
            penalty_log.append(extra.item())
            objective = objective + extra
        accelerator.backward(objective)
        if constraint is not None and constraint.project == "gradient":
            # before clipping: the clip bounds the step actually taken, not a raw gradient whose
            # frozen part (removed here) could dominate its norm and shrink every allowed step
            constraint.project_gradients()
        # the norm (of all processes' gradients) also serves the check; an infinite bound clips nothing
        norm = float(accelerator.clip_grad_norm_(params, settings.max_grad_norm or math.inf))
        if not (math.isfinite(loss.item()) and math.isfinite(norm)):
            raise FloatingPointError(
                f"{desc}: non-finite {'loss' if not math.isfinite(loss.item()) else 'gradient'} at "
                f"step {step + 1}/{total_steps} on examples "
                f"{[records[i].get('id', i) for i in index.tolist()]}; the weights were not updated "
                f"and nothing was written"
                + (f"; the state after step {saved_step} stays in {resume_file}" if saved_step else ""))
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if step % settings.log_every == 0 and accelerator.is_main_process:
            log.info("%s step %d/%d loss %.4f", desc, step + 1, total_steps, losses[-1])
        done = step + 1
        if resume_file and settings.checkpoint_every and done % settings.checkpoint_every == 0 \
                and done < total_steps:
            model_state, optimizer_state = (gathered_state(model, optimizer.optimizer) if sharded
                                            else (model.state_dict(), optimizer.state_dict()))
            saved_step = done
            if accelerator.is_main_process:
                save_state(resume_file, {
                    "fingerprint": resume_key, "step": done, "model": model_state,
                    "optimizer": optimizer_state, "scheduler": scheduler.state_dict(),
                    "data_rng": generator.get_state(), "torch_rng": torch.get_rng_state(),
                    "order": order, "losses": losses, "penalties": penalty_log,
                })
    if constraint is not None:
        constraint.remove()
    model.eval()
    return {
        "steps": total_steps,
        "resumed_from_step": first_step,
        "examples": count,
        "seconds": round(time.perf_counter() - started, 3),
        "loss": losses,
        "final_loss": sum(losses[-settings.log_every:]) / len(losses[-settings.log_every:]),
        **({"penalty": penalty_log} if penalties else {}),
        "environment": environment(),
    }


def train_base_model(general_train: str | Path, vocabulary_files: Sequence[str | Path],
                     family: str, architecture: Mapping, settings: Mapping, seed: int,
                     out_dir: str | Path, log_json: str | Path) -> dict:
    """Build the embedded default's tokenizer and seq2seq model; pretrain on the general mixture."""
    texts = [text for path in vocabulary_files for r in load_records(path) for text in (r["input"], r["target"])]
    tokenizer = build_word_tokenizer(texts)
    model = build_seq2seq(tokenizer, family, architecture, seed)
    records = load_records(general_train)
    result = train(model, tokenizer, records, TrainSettings.from_config(settings), seed, desc="base",
                   settings_key="base_model.train")
    result.update({"vocab_size": len(tokenizer), "parameters": sum(p.numel() for p in model.parameters())})
    save_checkpoint(model, tokenizer, out_dir)
    write_json(log_json, result)
    return result


def fetch_base_model(name: str, out_dir: str | Path, log_json: str | Path,
                     warm_start: str | None = None, seed: int = 0,
                     general_train: str | Path | None = None, settings: Mapping | None = None) -> dict:
    """Use a pretrained model as the base: load it, instruction-tune it if asked, save a copy.

    ``name`` is a hub id, a local directory or ``package:<module>/<subdir>`` (see
    :func:`asvd.models.resolve_pretrained`); ``warm_start="encoder_decoder"`` turns a pretrained
    encoder (BERT family) into an encoder-decoder. The copy makes the base checkpoint a file of
    this study, so its SVD cache, evaluation and every task's training chain on it like on a
    built one (and the hub is read once). ``seed`` initialises the weights a warm start adds.
    ``general_train`` (with ``settings``): train on the benchmark's general mixture first, so a
    model that never saw an instruction (a warm-started encoder) reads the prompt's options
    before the sequence starts, as the paper's multi-task-pretrained T5 does.
    """
    path = resolve_pretrained(name)
    if warm_start == "encoder_decoder":
        model, tokenizer = warm_start_encoder_decoder(path, seed)
    elif warm_start is None:
        model, tokenizer = load_checkpoint(path)
    else:
        raise ValueError(f"base_model.warm_start: {warm_start!r} (expected encoder_decoder or null)")
    result = {"source": str(name), "parameters": sum(p.numel() for p in model.parameters()),
              "model_type": model.config.model_type, "warm_start": warm_start,
              **({"seed": seed} if warm_start else {})}
    if general_train is not None:
        records = load_records(general_train)
        tuning = train(model, tokenizer, records, TrainSettings.from_config(settings), seed,
                       desc="instruction tuning", settings_key="base_model.train")
        result.update({"instruction_tuning": tuning, "seed": seed})
    save_checkpoint(model, tokenizer, out_dir)
    write_json(log_json, result)
    return result


def _sample_batches(model, tokenizer, records: Sequence[Mapping], settings: TrainSettings,
                    count: int, seed: int):
    """``count`` seeded samples, one per batch, unpadded (importance scores, Fisher information)."""
    generator = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(len(records), generator=generator)[:count].tolist()
    device = next(model.parameters()).device
    for i in chosen:
        batch = _trim(encode(tokenizer, [records[i]], settings, model), is_causal(model))
        yield {key: value.to(device) for key, value in batch.items()}


def build_constraint(model, tokenizer, method: Mapping, modules: Mapping[str, torch.nn.Module],
                     task_index: int, task_count: int, svd_path: str | Path | None,
                     importance_records: Sequence[Mapping] | None, settings: TrainSettings,
                     seed: int) -> OrthogonalSubspace | None:
    """The constraint a method's config asks for on this task, or None for plain fine-tuning."""
    spec = method.get("rank_rule")
    if spec is None:
        return None
    if task_index == 1 and spec.get("first_task", "constrained") == "full":
        return None
    rule = ranks.from_config(spec, task=task_index, tasks=task_count)
    importance = None
    if rule.needs_importance:
        batches = _sample_batches(model, tokenizer, importance_records, settings, rule.samples, seed)
        importance = importance_scores(model, modules, batches, rule.granularity)
    svd = cached_svd(svd_path, model, modules)
    return OrthogonalSubspace(model, targets=method.get("target_modules", "auto"), rank_rule=rule,
                              projection=method.get("projection", "two_sided"), svd=svd,
                              importance=importance, project=method.get("project", "gradient"))


def build_penalties(model, tokenizer, method: Mapping, task_index: int,
                    previous_records: Sequence[Mapping], settings: TrainSettings, seed: int,
                    checkpoint: str | Path) -> tuple[list, dict]:
    """The loss terms a method's ``ewc`` / ``lwf`` blocks add from the second task on, and the
    files the new checkpoint carries for them (EWC: the Fisher accumulated over every earlier
    task, continuing the one ``checkpoint``, the task's starting point, carries)."""
    if task_index == 1:
        return [], {}
    terms, files = [], {}
    if method.get("ewc"):
        spec = method["ewc"]
        batches = _sample_batches(model, tokenizer, previous_records, settings,
                                  spec["fisher_samples"], seed)
        fisher = online_fisher(read_fisher(checkpoint), fisher_diagonal(model, batches),
                               spec.get("decay", 1.0))
        terms.append(EWCPenalty(model, fisher, spec["strength"]))
        files[FISHER_FILE] = fisher
    if method.get("lwf"):
        terms.append(DistillationLoss(model, method["lwf"]["strength"], method["lwf"]["temperature"]))
    return terms, files


def finetune_task(checkpoint: str | Path, svd_path: str | Path | None, train_file: str | Path,
                  previous_train_file: str | Path | None, method: Mapping, settings: Mapping,
                  task: str, task_index: int, task_count: int, seed: int,
                  out_dir: str | Path, log_json: str | Path,
                  earlier_train_files: Mapping[str, str | Path] | None = None,
                  base_checkpoint: str | Path | None = None,
                  resume_file: str | Path | None = None, gpus: int = 0) -> dict:
    """Train one task of a sequence from the previous checkpoint; write checkpoint and log.

    Importance (if the rank rule needs it) and EWC's Fisher use the previous task's training
    samples; the first task uses its own samples for importance (docs/method.md §3).
    ``earlier_train_files`` (task -> train file, in training order) feed a method's replay memory
    or, for a ``joint`` method (MTL), join this task's data;
    ``base_checkpoint`` is where a shared LoRA adapter (SeqLoRA) is attached again.
    ``resume_file`` keeps the intra-task state of a job that may be killed (:mod:`asvd.resume`);
    it is removed once the outputs are written.
    ``train.num_processes`` processes (by default one per GPU of the job's ``gpus`` that torch
    sees) train data-parallel (:mod:`asvd.parallel`); the main process writes.
    """
    arguments = {name: value for name, value in locals().items() if name != "gpus"}
    train_settings = TrainSettings.from_config(settings)
    processes = process_count(train_settings.num_processes, gpus)
    unsharded = [key for key in ("lora", "ewc", "lwf") if method.get(key)]
    if train_settings.sharded(processes) and unsharded:
        raise ValueError(f"train.distributed: fsdp does not support a method with {unsharded} "
                         f"(they hold whole copies of the weights); use ddp")
    return launch(_finetune_task_process, arguments, processes)


def _finetune_task_process(checkpoint, svd_path, train_file, previous_train_file, method, settings,
                           task, task_index, task_count, seed, out_dir, log_json,
                           earlier_train_files, base_checkpoint, resume_file) -> dict:
    """One process of :func:`finetune_task` (the only one, or one rank of several)."""
    train_settings = TrainSettings.from_config(settings)
    accelerator = make_accelerator()
    lora = method.get("lora")
    lora_state = read_state(checkpoint) if lora else {}
    continue_shared = bool(lora) and not lora["per_task"] and bool(lora_state)
    if continue_shared:  # its adapter state is used, its weights are not loaded (and so not checked)
        verify_checksums(checkpoint)
    model, tokenizer = load_checkpoint(base_checkpoint if continue_shared else checkpoint)
    model.to(accelerator.device)  # before the constraint's bases are placed beside its weights
    records = load_records(train_file)
    previous_records = load_records(previous_train_file) if previous_train_file else records
    earlier = {name: load_records(path) for name, path in (earlier_train_files or {}).items()}
    if method.get("schedule") == "joint":  # MTL: every task of the order in one training set
        records = [record for rows in earlier.values() for record in rows] + records
    elif method.get("replay"):
        records = replay_mix(records, earlier, method["replay"]["ratio"],
                             method["replay"].get("buffer_per_task"), seed, task_index)
    targets = find_targets(model, method.get("target_modules", "auto"))
    constraint = build_constraint(model, tokenizer, method, targets, task_index, task_count, svd_path,
                                  previous_records, train_settings, seed)
    if not method.get("train_other_params", True):
        target_weights = {id(m.weight) for m in targets.values()}
        for param in model.parameters():
            param.requires_grad_(id(param) in target_weights)
    penalties, extra_files = build_penalties(model, tokenizer, method, task_index, previous_records,
                                       train_settings, seed, checkpoint)
    if lora:
        lora_targets = list(find_targets(model, lora.get("target_modules", "auto")))
        model = attach_lora(model, lora, lora_targets, adapter_seed(seed, task_index),
                            lora_state if continue_shared else None)
        layers = lora_layers(model, lora_targets)
        if lora.get("orthogonal"):
            old_a = {name: lora_state[f"{name}.A"] for name in lora_targets if f"{name}.A" in lora_state}
            penalties.append(OrthogonalLoRA(layers, old_a, **lora["orthogonal"]))
    trained_parameters = sum(p.numel() for p in model.parameters() if p.requires_grad)
    inputs = [checkpoint, train_file, previous_train_file, base_checkpoint,
              *(earlier_train_files or {}).values(), svd_path]
    resume_key = fingerprint(settings, seed, [path for path in inputs if path], method=method,
                             task=task, step=task_index)
    result = train(model, tokenizer, records, train_settings, seed, constraint=constraint,
                   desc=f"{task} ({task_index}/{task_count})", penalties=penalties,
                   resume_file=resume_file, resume_key=resume_key, accelerator=accelerator)
    if lora:
        extra_files[STATE_FILE] = next_state(layers, lora_state, lora["per_task"])
        model = model.merge_and_unload()
    result.update({
        "task": task,
        "step": task_index,
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
