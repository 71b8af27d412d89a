"""Snakemake adapter: the constraint's cost measurement (asvd.cost.overhead.run_suite)."""
from asvd.pipeline.runtime import stage

with stage(snakemake):
    from asvd.cost.overhead import run_suite

    settings = snakemake.params.settings
    run_suite(settings["sizes"], settings["fractions"], snakemake.output[0], seed=settings["seed"],
              device=settings["device"], dtype=settings["dtype"], methods=settings["methods"],
              repeats=settings["repeats"])
