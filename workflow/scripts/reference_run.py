"""Snakemake adapter: a published run's matrix and summary (asvd.reference_runs)."""
from asvd.runtime import stage

with stage(snakemake):
    from asvd.reference_runs import collect_reference_run

    collect_reference_run(
        snakemake.params.source,
        snakemake.wildcards.reference,
        snakemake.params.order,
        snakemake.output.matrix,
        snakemake.output.summary,
    )
