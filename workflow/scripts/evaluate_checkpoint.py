"""Snakemake adapter: score one checkpoint on its tasks and the general set."""
from asvd.pipeline.runtime import stage

with stage(snakemake):
    from asvd.evaluation.evaluate import evaluate_checkpoint

    evaluate_checkpoint(
        snakemake.input.model,
        dict(zip(snakemake.params.names, snakemake.input.tests)),
        snakemake.output.eval_json,
        **snakemake.params.evaluation,
    )
