"""Snakemake adapter: SVD cache of one checkpoint (asvd.svd.build_cache)."""
from asvd.runtime import stage

with stage(snakemake):
    from asvd.svd import build_cache

    print(build_cache(snakemake.input.model, snakemake.output.svd, snakemake.params.targets))
