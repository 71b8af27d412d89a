"""Snakemake adapter: Markdown table and figure of the constraint cost benchmark."""
from asvd.runtime import stage

with stage(snakemake):
    from asvd.benchmark import write_report

    write_report(snakemake.input[0], snakemake.output.md, snakemake.output.png,
                 snakemake.output.pdf)
