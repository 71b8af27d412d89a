"""Snakemake adapter: the paper's table beside this study's values (asvd.analysis.tables.write_paper_tables)."""
from asvd.pipeline.runtime import stage

with stage(snakemake):
    from asvd.analysis.tables import write_paper_tables

    write_paper_tables(
        list(snakemake.input.summaries),
        snakemake.input.reference,
        dict(snakemake.params.method_names),
        snakemake.output.csv,
        snakemake.output.md,
        snakemake.output.tex,
        snakemake.output.html,
    )
