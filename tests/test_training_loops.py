"""The constraint inside other people's training loops: the Hugging Face Trainer (which clips
between backward and the step), gradient accumulation, and saving and resuming mid-task."""

import os
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
import torch
from safetensors.torch import load_file
from transformers import T5Config, T5ForConditionalGeneration, Trainer, TrainerCallback, TrainingArguments

import asvd
from asvd.method.constraint import OrthogonalSubspace

RESUME_HELPER = Path(__file__).parent / "helpers" / "resume_train.py"
STEPS, BATCH, LR, CLIP = 8, 4, 1e-2, 0.05  # CLIP binds: the gradient norms run about 1 to 2


def tiny_t5() -> T5ForConditionalGeneration:
    torch.manual_seed(0)
    return T5ForConditionalGeneration(T5Config(
        vocab_size=64, d_model=16, d_kv=8, d_ff=32, num_layers=2, num_heads=2, dropout_rate=0.0,
        decoder_start_token_id=0, pad_token_id=0))


def records(count: int) -> dict:
    generator = torch.Generator().manual_seed(1)
    return {"input_ids": torch.randint(1, 64, (count, 10), generator=generator).tolist(),
            "attention_mask": [[1] * 10] * count,
            "labels": torch.randint(1, 64, (count, 4), generator=generator).tolist()}


def constrained(model) -> OrthogonalSubspace:
    return OrthogonalSubspace(model, "auto", asvd.ranks.Uniform(unfreeze=0.5))


def train_with_trainer(model, optimizer, tmp_path, accumulation=1, callbacks=()):
    """The Trainer with the user's one line, ``optimizers=(constraint.wrap(AdamW(...)), None)``,
    batches in order and a constant learning rate so that a hand loop can repeat it."""
    args = TrainingArguments(
        output_dir=str(tmp_path / "trainer"), per_device_train_batch_size=BATCH, max_steps=STEPS,
        gradient_accumulation_steps=accumulation, learning_rate=LR, lr_scheduler_type="constant",
        max_grad_norm=CLIP, train_sampling_strategy="sequential", report_to=[], save_strategy="no",
        logging_strategy="no", use_cpu=True, seed=0, disable_tqdm=True)
    trainer = Trainer(model=model, args=args, optimizers=(optimizer, None), callbacks=list(callbacks),
                      train_dataset=datasets.Dataset.from_dict(records(STEPS * BATCH * accumulation)))
    trainer.train()


def max_difference(a: torch.nn.Module, b: torch.nn.Module) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def project_clip_step() -> tuple[torch.nn.Module, list[float]]:
    """The reference: project, then clip, then step, by hand; with the gradient norms it clipped."""
    model = tiny_t5()
    constraint = constrained(model)
    optimizer = constraint.wrap(torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.01),
                                project_gradients=False)
    data, norms = records(STEPS * BATCH), []
    for step in range(STEPS):
        rows = slice(step * BATCH, (step + 1) * BATCH)
        model(**{key: torch.tensor(values[rows]) for key, values in data.items()}).loss.backward()
        constraint.project_gradients()
        norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)))
        optimizer.step()
        optimizer.zero_grad()
    return model, norms


def test_the_trainer_with_binding_clipping_matches_project_clip_step(tmp_path):
    reference, norms = project_clip_step()
    assert min(norms) > 10 * CLIP  # clipping binds at every step
    model = tiny_t5()
    constraint = constrained(model)
    optimizer = constraint.wrap(torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.01))
    train_with_trainer(model, optimizer, tmp_path)
    assert max_difference(model, reference) <= 1e-5
    assert constraint.max_violation() <= 1e-5
    assert max_difference(model, tiny_t5()) > 1e-3  # it trained


def test_projecting_only_at_the_step_lets_the_trainer_clip_the_raw_gradient(tmp_path):
    """What the backward hooks prevent: projected after the Trainer's clipping, every step
    shrinks by the share of the norm that lay in frozen directions (the test above can fail)."""
    reference, _ = project_clip_step()
    model = tiny_t5()
    constraint = constrained(model)
    optimizer = constraint.wrap(torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.01),
                                project_gradients=False)
    optimizer.register_step_pre_hook(lambda *_: constraint.project_gradients())
    train_with_trainer(model, optimizer, tmp_path)
    assert constraint.max_violation() <= 1e-5  # still exact, but another trajectory
    assert max_difference(model, reference) > 1e-3


class ClippedGradients(TrainerCallback):
    """Records, just before each optimizer step (after the Trainer clipped), how much of each
    target's gradient lies in its frozen directions, relative to the gradient."""

    def __init__(self, constraint: OrthogonalSubspace):
        self.constraint, self.frozen_shares = constraint, []

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        for subspace in self.constraint.subspaces.values():
            grad = subspace.weight.grad
            frozen = torch.cat([(subspace.U.T @ grad).flatten(), (grad @ subspace.V).flatten()])
            self.frozen_shares.append(float(frozen.norm() / grad.norm()))


@pytest.mark.parametrize("accumulation", [1, 3])
def test_the_trainer_clips_a_gradient_already_projected(tmp_path, accumulation):
    model = tiny_t5()
    constraint = constrained(model)
    seen = ClippedGradients(constraint)
    train_with_trainer(model, constraint.wrap(torch.optim.AdamW(model.parameters(), lr=LR)), tmp_path,
                       accumulation, callbacks=[seen])
    assert len(seen.frozen_shares) == STEPS * len(constraint.subspaces)
    assert max(seen.frozen_shares) < 1e-5


@pytest.mark.parametrize("after_backward", [False, True])
def test_a_gradient_no_hook_projected_is_projected_at_the_step(after_backward):
    """FSDP2 writes sharded gradients without autograd, a loop may replace one after backward
    (noise for differential privacy): the pre-step projection catches them."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(12, 24), torch.nn.Tanh(), torch.nn.Linear(24, 8))
    constraint = OrthogonalSubspace(model, [r"^0$", r"^2$"], asvd.ranks.Uniform(unfreeze=0.5))
    optimizer = constraint.wrap(torch.optim.SGD(model.parameters(), lr=0.1))
    if after_backward:
        model(torch.randn(5, 12)).pow(2).sum().backward()
    for parameter in model.parameters():
        parameter.grad = torch.randn_like(parameter)
    optimizer.step()
    for subspace in constraint.subspaces.values():
        assert float((subspace.U.T @ subspace.weight.grad).abs().max()) < 1e-5


def test_removed_hooks_leave_gradients_alone():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(12, 24))
    constraint = OrthogonalSubspace(model, [r"^0$"], asvd.ranks.Uniform(unfreeze=0.5))
    constraint.wrap(torch.optim.SGD(model.parameters(), lr=0.1))
    constraint.remove()
    model(torch.randn(5, 12)).pow(2).sum().backward()
    assert float((constraint.subspaces["0"].U.T @ model[0].weight.grad).abs().max()) > 1e-2


def run_helper(*args) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    result = subprocess.run([sys.executable, str(RESUME_HELPER), *map(str, args)], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def test_a_run_saved_after_10_steps_resumes_bit_identically_in_a_fresh_process(tmp_path):
    whole, first, rest = (tmp_path / part for part in ("whole", "first", "rest"))
    run_helper(whole, 0, 20)
    run_helper(first, 0, 10)
    run_helper(rest, 10, 20, first)
    uninterrupted, resumed = (load_file(run / "model" / "model.safetensors") for run in (whole, rest))
    assert uninterrupted.keys() == resumed.keys()
    assert all(torch.equal(uninterrupted[key], resumed[key]) for key in uninterrupted)
    midway = load_file(first / "model" / "model.safetensors")
    assert not all(torch.equal(midway[key], resumed[key]) for key in midway)  # the second half trained
    # an SVD of the moved weights would freeze another subspace: the saved one is what resumes
    model = T5ForConditionalGeneration.from_pretrained(first / "model")
    saved = torch.load(first / "constraint.pt")["targets"]
    fresh = constrained(model).subspaces
    overlaps = [float(torch.linalg.matrix_norm(saved[name]["U"][:, :k].T @ sub.U) ** 2 / k)
                for name, sub in fresh.items() for k in [sub.U.shape[1]]]
    assert min(overlaps) < 0.999


def trained(model, constraint, steps=10, seed=0):
    optimizer = constraint.wrap(torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1))
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(16, 12, generator=generator)
        (model(x) - torch.sin(x[:, :8])).pow(2).mean().backward()
        optimizer.step()
        optimizer.zero_grad()
    constraint.remove()
    return model


def mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(12, 24), torch.nn.Tanh(), torch.nn.Linear(24, 8))


TARGETS = [r"^0$", r"^2$"]


@pytest.mark.parametrize("projection", ["two_sided", "paper_block"])
def test_load_state_dict_restores_the_saved_subspace_over_one_from_moved_weights(projection):
    model = mlp()
    constraint = OrthogonalSubspace(model, TARGETS, asvd.ranks.Uniform(unfreeze=0.5), projection=projection)
    trained(model, constraint)
    state = constraint.state_dict()
    rebuilt = OrthogonalSubspace(model, TARGETS, asvd.ranks.Uniform(unfreeze=0.5), projection=projection)
    assert not torch.allclose(rebuilt.subspaces["0"].U, constraint.subspaces["0"].U, atol=1e-3)
    rebuilt.load_state_dict(state)
    for name, subspace in constraint.subspaces.items():
        for part in ("U", "S", "V"):
            assert torch.equal(getattr(rebuilt.subspaces[name], part), getattr(subspace, part))
    assert rebuilt.max_violation() <= 1e-5


def test_a_state_is_refused_where_the_weights_do_not_hold_it_or_the_settings_differ():
    model = mlp()
    constraint = OrthogonalSubspace(model, TARGETS, asvd.ranks.Uniform(unfreeze=0.5))
    trained(model, constraint)
    state = constraint.state_dict()
    other = mlp()
    with torch.no_grad():
        other[0].weight.add_(0.05 * torch.randn_like(other[0].weight))  # another checkpoint
    with pytest.raises(ValueError, match=r"state\['0'\].*no longer holds the saved frozen triplets"):
        OrthogonalSubspace(other, TARGETS, state=state)
    with pytest.raises(ValueError, match="projection='two_sided'"):
        OrthogonalSubspace(model, TARGETS, projection="paper_block", state=state)
    with pytest.raises(ValueError, match=r"state\['0'\]: froze k=6, the rank rule gives 3"):
        OrthogonalSubspace(model, TARGETS, asvd.ranks.Uniform(unfreeze=0.75)).load_state_dict(state)
    with pytest.raises(ValueError, match="not targets of this model"):
        OrthogonalSubspace(model, [r"^0$"], state=state)
    with pytest.raises(ValueError, match="without svd, rank_rule or importance"):
        OrthogonalSubspace(model, TARGETS, asvd.ranks.Uniform(unfreeze=0.5), state=state)
    with pytest.raises(ValueError, match="not an OrthogonalSubspace state_dict"):
        OrthogonalSubspace(model, TARGETS, state={"targets": {}})
    resumed = OrthogonalSubspace(model, TARGETS, state=state)  # the weights it was saved from
    assert resumed.frozen_ranks() == constraint.frozen_ranks()
