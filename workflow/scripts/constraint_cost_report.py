"""Snakemake adapter: Markdown table and figure of the constraint's cost measurement."""
from asvd.pipeline.runtime import stage

with stage(snakemake):
    from asvd.cost.overhead import write_report

    write_report(snakemake.input[0], snakemake.output.md, snakemake.output.png,
                 snakemake.output.pdf)
