"""Snakemake adapter: the base model, loaded by name (and instruction-tuned) or built and
pretrained (asvd.train)."""
from asvd.pipeline.runtime import stage

with stage(snakemake):
    from asvd.train.base import fetch_base_model, train_base_model

    if snakemake.params.pretrained:
        fetch_base_model(snakemake.params.pretrained, snakemake.output.model,
                         snakemake.output.log_json, warm_start=snakemake.params.warm_start,
                         seed=snakemake.params.seed,
                         general_train=snakemake.input.get("general"),
                         settings=snakemake.params.train)
    else:
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
