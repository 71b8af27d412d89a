"""Snakemake adapter: draw one named figure (asvd.analysis.figure_registry.draw)."""
from asvd.pipeline.runtime import stage

with stage(snakemake):
    from asvd.analysis.figure_registry import draw

    draw(
        snakemake.wildcards.figure,
        snakemake.params.inputs,
        snakemake.output.png,
        snakemake.output.pdf,
        snakemake.params.options,
    )
