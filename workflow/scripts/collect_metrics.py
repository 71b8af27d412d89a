"""Snakemake adapter: accuracy matrix and summary of one run (asvd.analysis.metrics.collect_run)."""
from asvd.pipeline.runtime import stage

with stage(snakemake):
    from asvd.analysis.metrics import collect_run

    collect_run(
        snakemake.input.base,
        list(snakemake.input.steps),
        snakemake.params.tasks,
        snakemake.output.matrix,
        snakemake.output.summary,
        snakemake.params.meta,
        schedule=snakemake.params.schedule,
        train_logs=list(snakemake.input.train_logs),
        premise_json=snakemake.input.premise[0] if snakemake.input.premise else None,
        tuning_json=snakemake.input.tuned[0] if snakemake.input.tuned else None,
        tuned_keys=snakemake.params.tuned_keys,
        lr_scale=snakemake.params.lr_scale,
    )
