"""Snakemake adapter: summary tables over all runs (asvd.analysis.tables.write_summary_tables)."""
from asvd.pipeline.runtime import stage

with stage(snakemake):
    from asvd.analysis.tables import write_summary_tables

    write_summary_tables(
        list(snakemake.input.summaries),
        snakemake.output.csv,
        snakemake.output.md,
        snakemake.output.tex,
        snakemake.output.html,
        snakemake.output.environment,
    )
