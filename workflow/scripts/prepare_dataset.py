"""Snakemake adapter: prepare one task's train/test files (asvd.data.prepare.prepare_task)."""
from asvd.pipeline.runtime import stage

with stage(snakemake):
    from asvd.data.prepare import prepare_task
    from asvd.io import write_json

    stats = prepare_task(
        snakemake.params.benchmark,
        snakemake.wildcards.task,
        snakemake.params.template,
        snakemake.params.seed,
        snakemake.output.train,
        snakemake.output.test,
    )
    write_json(snakemake.output.stats, stats)
    print(f"prepared {snakemake.wildcards.task}: {stats}")
