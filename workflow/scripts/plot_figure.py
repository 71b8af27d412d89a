"""Snakemake adapter: draw one named figure (asvd.figures.draw)."""
from asvd.runtime import stage

with stage(snakemake):
    from asvd.figures import draw

    draw(
        snakemake.wildcards.figure,
        snakemake.params.inputs,
        snakemake.output.png,
        snakemake.output.pdf,
        spectra_targets=snakemake.params.spectra_targets,
    )
