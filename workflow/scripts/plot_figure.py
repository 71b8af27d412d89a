"""Snakemake adapter: draw one named figure (asvd.analysis.figures.draw)."""
from asvd.pipeline.runtime import stage

with stage(snakemake):
    from asvd.analysis.figures import draw

    draw(
        snakemake.wildcards.figure,
        snakemake.params.inputs,
        snakemake.output.png,
        snakemake.output.pdf,
        spectra_targets=snakemake.params.spectra_targets,
    )
