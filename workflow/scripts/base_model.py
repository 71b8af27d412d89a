"""Snakemake adapter: build and pretrain the base model (asvd.training.train_base_model)."""
from asvd.runtime import stage

with stage(snakemake):
    from asvd.training import train_base_model

    train_base_model(
        snakemake.input.general,
        snakemake.input.vocabulary,
        snakemake.params.family,
        snakemake.params.architecture,
        snakemake.params.train,
        snakemake.params.seed,
        snakemake.output.model,
        snakemake.output.log_json,
    )
