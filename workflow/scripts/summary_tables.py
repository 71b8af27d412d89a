"""Snakemake adapter: summary tables over all runs (asvd.tables.write_summary_tables)."""
from asvd.runtime import stage

with stage(snakemake):
    from asvd.tables import write_summary_tables

    write_summary_tables(
        list(snakemake.input.summaries),
        snakemake.output.csv,
        snakemake.output.md,
        snakemake.output.tex,
        snakemake.output.environment,
    )
