"""The training loop every stage shares: settings, tokenisation, and :func:`train`.

One loop serves every method: the subspace constraint only wraps the optimizer, EWC, LwF and
O-LoRA add loss terms, replay and MTL change the training set (:mod:`asvd.train.finetune` puts a
method together); the base-model stage uses it too (:mod:`asvd.train.base`). Evaluation encodes
prompts with :func:`encode` as well, so training and scoring read the same tokens.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import torch
from tqdm.auto import tqdm

from asvd.pipeline.runtime import environment
from asvd.train.models import check_lengths, is_causal
from asvd.train.parallel import accelerator as make_accelerator
from asvd.train.parallel import (
    gathered_state,
    global_batch_loss,
    label_tokens,
    scatter_state,
    shard,
    shard_model,
)
from asvd.train.resume import load_state, save_state

if TYPE_CHECKING:
    from asvd.method.constraint import OrthogonalSubspace

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
    checkpoint_every: int = 0  # steps between saved intra-task states (0: never; asvd.train.resume)
    num_processes: int | None = None  # data-parallel processes (None: the job's GPUs; asvd.train.parallel)
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
    # tokenised exactly as asvd.evaluation.evaluate.generate tokenises prompts (special tokens included)
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


@dataclass
class _Optimisation:
    """What one training run steps: the model as accelerate wraps it, its optimizer and
    schedule, the parameters it clips."""

    trained: torch.nn.Module
    optimizer: object
    scheduler: torch.optim.lr_scheduler.LambdaLR
    params: list[torch.nn.Parameter]
    sharded: bool


def _optimisation(model, settings: TrainSettings, constraint, accelerator,
                  total_steps: int) -> _Optimisation:
    """Place (and shard) the model, build AdamW (no decay on vectors) with the constraint's
    re-anchoring wrapped around its step, and the warm-up/decay schedule."""
    if settings.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    model.to(accelerator.device)
    sharded = settings.sharded(accelerator.num_processes)
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
    if constraint is not None:  # its gradient projection runs in the loop, before clipping
        constraint.wrap(optimizer, project_gradients=False)
    if sharded:  # already distributed: accelerate must not add DDP on top
        trained, optimizer = model, accelerator.prepare_optimizer(optimizer)
    else:
        trained, optimizer = accelerator.prepare(model, optimizer)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, linear_warmup_decay(int(settings.warmup_ratio * total_steps), total_steps)
    )
    return _Optimisation(trained, optimizer, scheduler, params, sharded)


@dataclass
class _Progress:
    """Where training stands: the data order still to draw from, the losses so far and the
    step to start at; what an intra-task state saves and restores."""

    generator: torch.Generator
    order: torch.Tensor
    losses: list[float]
    penalties: list[float]
    first_step: int = 0

    def next_batch(self, count: int, batch_size: int) -> torch.Tensor:
        """The next batch's example indices: a seeded permutation per pass, drawn in order."""
        if len(self.order) < batch_size:
            self.order = torch.cat([self.order, torch.randperm(count, generator=self.generator)])
        index, self.order = self.order[:batch_size], self.order[batch_size:]
        return index

    def restore(self, saved: Mapping, model, run: _Optimisation) -> None:
        if run.sharded:
            scatter_state(model, run.optimizer.optimizer, saved["model"], saved["optimizer"])
        else:
            model.load_state_dict(saved["model"])
            run.optimizer.load_state_dict(saved["optimizer"])
        run.scheduler.load_state_dict(saved["scheduler"])
        self.generator.set_state(saved["data_rng"])
        torch.set_rng_state(saved["torch_rng"])
        self.order, self.losses, self.penalties, self.first_step = (
            saved["order"], saved["losses"], saved["penalties"], saved["step"])

    def log(self, steps: int, examples: int, seconds: float, log_every: int,
            penalised: bool) -> dict:
        """The loop's part of the training log (asvd.train_log.TaskLog's first keys)."""
        last = self.losses[-log_every:]
        return {"steps": steps, "resumed_from_step": self.first_step, "examples": examples,
                "seconds": round(seconds, 3), "loss": self.losses,
                "final_loss": sum(last) / len(last),
                **({"penalty": self.penalties} if penalised else {}),
                "environment": environment()}

    def save(self, resume_file, resume_key: str, done: int, model, run: _Optimisation,
             accelerator) -> None:
        model_state, optimizer_state = (gathered_state(model, run.optimizer.optimizer) if run.sharded
                                        else (model.state_dict(), run.optimizer.state_dict()))
        if accelerator.is_main_process:
            save_state(resume_file, {
                "fingerprint": resume_key, "step": done, "model": model_state,
                "optimizer": optimizer_state, "scheduler": run.scheduler.state_dict(),
                "data_rng": self.generator.get_state(), "torch_rng": torch.get_rng_state(),
                "order": self.order, "losses": self.losses, "penalties": self.penalties,
            })


def _step_loss(model, run: _Optimisation, batch: Mapping, global_labels: torch.Tensor,
               penalties: Sequence[Callable], progress: _Progress, accelerator,
               causal: bool) -> torch.Tensor:
    """Backpropagate one batch's objective (the task loss, over the global batch when several
    processes share it, plus every penalty term); return the task loss to log."""
    outputs = run.trained(**batch)
    loss = objective = outputs.loss
    if accelerator.num_processes > 1:
        tokens = label_tokens(batch["labels"], causal)
        objective = global_batch_loss(loss, tokens, label_tokens(global_labels, causal),
                                      accelerator.num_processes)
        loss = accelerator.reduce(objective.detach(), "mean")  # the global batch's loss
    if penalties:
        extra = sum(term(model, batch, outputs) for term in penalties)
        progress.penalties.append(extra.item())
        objective = objective + extra
    accelerator.backward(objective)
    return loss


def _descend(run: _Optimisation, constraint, settings: TrainSettings, loss: torch.Tensor,
             accelerator, failure: Callable[[str], str]) -> None:
    """Project (where the constraint acts on the gradient), clip and check the gradient, then
    step the optimizer and the schedule; a non-finite loss or gradient stops before the step."""
    if constraint is not None and constraint.acts_on == "gradient":
        # before clipping: the clip bounds the step actually taken, not a raw gradient whose
        # frozen part (removed here) could dominate its norm and shrink every allowed step
        constraint.project_gradients()
    # the norm (of all processes' gradients) also serves the check; an infinite bound clips nothing
    norm = float(accelerator.clip_grad_norm_(run.params, settings.max_grad_norm or math.inf))
    if not (math.isfinite(loss.item()) and math.isfinite(norm)):
        raise FloatingPointError(failure("loss" if not math.isfinite(loss.item()) else "gradient"))
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)


def train(model, tokenizer, records: Sequence[Mapping], settings: TrainSettings, seed: int,
          constraint: OrthogonalSubspace | None = None, desc: str = "train",
          penalties: Sequence[Callable] = (), resume_file: str | Path | None = None,
          resume_key: str = "", accelerator=None, settings_key: str = "train") -> dict:
    """Train ``model`` on ``records``; return the log (loss curve, steps, seconds, violation).

    Only parameters with ``requires_grad`` are optimised (``finetune_task`` freezes non-targets
    that way when ``train_other_params`` is false). Each of ``penalties`` (see
    :mod:`asvd.baselines.regularizers`) adds ``term(model, batch, outputs)`` to the task loss; the logged
    ``loss`` is the task loss alone, ``penalty`` the sum of the terms. With ``resume_file`` the
    state is saved there every ``settings.checkpoint_every`` steps and, when a state saved under
    the same ``resume_key`` exists, training continues from it (:mod:`asvd.train.resume`).
    Under ``accelerator`` with several processes each trains on its slice of every global batch
    of ``settings.batch_size`` examples with the same result (:mod:`asvd.train.parallel`); only the main
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
    total_steps = max(1, math.ceil(settings.epochs * math.ceil(count / settings.batch_size)))
    run = _optimisation(model, settings, constraint, accelerator, total_steps)
    progress = _Progress(torch.Generator().manual_seed(seed), torch.empty(0, dtype=torch.long), [], [])
    model.train()
    started = time.perf_counter()
    saved = load_state(resume_file, resume_key) if resume_file else None
    if saved is not None:
        progress.restore(saved, model, run)
    saved_step = progress.first_step  # the last step whose state is on disk (0: none)
    for step in tqdm(range(progress.first_step, total_steps), desc=desc, mininterval=5,
                     initial=progress.first_step, total=total_steps,
                     disable=not accelerator.is_main_process):
        index = progress.next_batch(count, settings.batch_size)
        mine = shard(index, rank, processes)
        batch = _trim({key: value[mine].to(accelerator.device) for key, value in data.items()}, causal)
        loss = _step_loss(model, run, batch, data["labels"][index], penalties, progress, accelerator,
                          causal)
        _descend(run, constraint, settings, loss, accelerator, lambda what: (
            f"{desc}: non-finite {what} at step {step + 1}/{total_steps} on examples "
            f"{[records[i].get('id', i) for i in index.tolist()]}; the weights were not updated "
            f"and nothing was written"
            + (f"; the state after step {saved_step} stays in {resume_file}" if saved_step else "")))
        progress.losses.append(loss.item())
        if step % settings.log_every == 0 and accelerator.is_main_process:
            log.info("%s step %d/%d loss %.4f", desc, step + 1, total_steps, progress.losses[-1])
        done = step + 1
        if resume_file and settings.checkpoint_every and done % settings.checkpoint_every == 0 \
                and done < total_steps:  # the last step's state would never be read
            progress.save(resume_file, resume_key, done, model, run, accelerator)
            saved_step = done
    if constraint is not None:
        constraint.remove()
    model.eval()
    return progress.log(total_steps, count, time.perf_counter() - started, settings.log_every,
                        bool(penalties))


def sample_batches(model, tokenizer, records: Sequence[Mapping], settings: TrainSettings,
                    count: int, seed: int):
    """``count`` seeded samples, one per batch, unpadded (importance scores, Fisher information)."""
    generator = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(len(records), generator=generator)[:count].tolist()
    device = next(model.parameters()).device
    for i in chosen:
        batch = _trim(encode(tokenizer, [records[i]], settings, model), is_causal(model))
        yield {key: value.to(device) for key, value in batch.items()}
