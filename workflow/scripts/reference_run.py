"""Snakemake adapter: a published run's matrix and summary (asvd.analysis.reference_runs)."""
from asvd.pipeline.runtime import stage

with stage(snakemake):
    from asvd.analysis.reference_runs import collect_reference_run

    collect_reference_run(
        snakemake.params.source,
        snakemake.wildcards.reference,
        snakemake.params.order,
        snakemake.output.matrix,
        snakemake.output.summary,
    )
