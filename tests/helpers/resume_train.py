"""Train a tiny T5 under the constraint, optionally saving or resuming mid-task; run as a fresh
process by tests/test_training_loops.py so a resume shares nothing in memory with its first half.

Usage: resume_train.py OUT_DIR START STOP [RESUME_DIR]
Trains steps START..STOP-1 (each step's batch drawn from a generator seeded by the step, so a
resumed run sees the batches an uninterrupted one does) and saves the model (Hugging Face files),
the optimizer and the constraint's state into OUT_DIR; with RESUME_DIR it starts from that save.
"""

import sys
from pathlib import Path

import torch
from transformers import T5Config, T5ForConditionalGeneration

import asvd

BATCH, SOURCE, TARGET, VOCAB = 4, 10, 4, 64


def batch(step: int) -> dict:
    generator = torch.Generator().manual_seed(1000 + step)
    return {"input_ids": torch.randint(1, VOCAB, (BATCH, SOURCE), generator=generator),
            "labels": torch.randint(1, VOCAB, (BATCH, TARGET), generator=generator)}


def main(out: Path, start: int, stop: int, resume: Path | None) -> None:
    torch.manual_seed(0)
    if resume is None:
        model = T5ForConditionalGeneration(T5Config(
            vocab_size=VOCAB, d_model=16, d_kv=8, d_ff=32, num_layers=2, num_heads=2,
            dropout_rate=0.0, decoder_start_token_id=0, pad_token_id=0))
        constraint = asvd.OrthogonalSubspace(model, "auto", asvd.ranks.Uniform(unfreeze=0.5))
    else:
        model = T5ForConditionalGeneration.from_pretrained(resume / "model")
        constraint = asvd.OrthogonalSubspace(model, "auto", state=torch.load(resume / "constraint.pt"))
    optimizer = constraint.wrap(torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.01))
    if resume is not None:
        optimizer.load_state_dict(torch.load(resume / "optimizer.pt"))
    for step in range(start, stop):
        model(**batch(step)).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.05)
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(out / "model")
    torch.save(optimizer.state_dict(), out / "optimizer.pt")
    torch.save(constraint.state_dict(), out / "constraint.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]),
         Path(sys.argv[4]) if len(sys.argv) > 4 else None)
