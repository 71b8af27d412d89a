"""Snakemake adapter: tune a method on its order's first task (asvd.train.tuning.tune_first_task)."""
from asvd.pipeline.runtime import stage

# Guarded as finetune_task.py is: a candidate may train in several spawned processes.
if __name__ == "__main__":
    with stage(snakemake):
        from asvd.train.tuning import tune_first_task

        tune_first_task(
            base=snakemake.input.base,
            train_file=snakemake.input.train,
            task=snakemake.params.task,
            task_count=snakemake.params.task_count,
            method=snakemake.params.method,
            settings=snakemake.params.train,
            grid=snakemake.params.grid,
            validation=snakemake.params.validation,
            seed=snakemake.params.seed,
            evaluation=snakemake.params.evaluation,
            out_json=snakemake.output.tuning,
            svd_path=snakemake.input.svd[0] if snakemake.input.svd else None,
            gpus=int(snakemake.resources.get("gpu", 0)),
        )
