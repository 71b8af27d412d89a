"""Snakemake adapter: SVD cache of one checkpoint (asvd.method.svd.build_cache)."""
from asvd.pipeline.runtime import stage

with stage(snakemake):
    from asvd.method.svd import build_cache

    print(build_cache(snakemake.input.model, snakemake.output.svd, snakemake.params.targets))
