"""Snakemake adapter: prepare one task's train/test files (asvd.data.prepare_task)."""
from asvd.runtime import stage

with stage(snakemake):
    from asvd.data import prepare_task

    counts = prepare_task(
        snakemake.params.benchmark,
        snakemake.wildcards.task,
        snakemake.params.template,
        snakemake.params.seed,
        snakemake.output.train,
        snakemake.output.test,
    )
    print(f"prepared {snakemake.wildcards.task}: {counts}")
