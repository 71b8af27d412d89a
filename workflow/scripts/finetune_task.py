"""Snakemake adapter: train one task of a run (asvd.train.finetune.finetune_task)."""
from asvd.pipeline.runtime import stage

# The guard matters: with several training processes (asvd.train.parallel) each is spawned, and a
# spawned process imports this file again as __mp_main__; it must not start the stage again.
if __name__ == "__main__":
    with stage(snakemake):
        from asvd.train.choice import apply_choice, read_choice
        from asvd.train.finetune import TaskInputs, TaskPosition, finetune_task

        method, train = snakemake.params.method, snakemake.params.train
        if snakemake.input.tuned:  # the lr (and trr) tuned on the order's first task
            choice = read_choice(snakemake.input.tuned[0])
            method, train = apply_choice(method, train, choice, snakemake.params.tuned_keys)
        finetune_task(
            inputs=TaskInputs(
                checkpoint=snakemake.input.checkpoint,
                train_file=snakemake.input.train,
                previous_train_file=snakemake.input.previous_train,
                svd_path=snakemake.input.svd or None,
                earlier_train_files=dict(
                    zip(snakemake.params.earlier_tasks, snakemake.input.earlier_train)
                ),
                base_checkpoint=snakemake.input.base[0] if snakemake.input.base else None,
            ),
            position=TaskPosition(
                task=snakemake.params.task,
                index=int(snakemake.wildcards.step),
                count=snakemake.params.task_count,
            ),
            method=method,
            settings=train,
            seed=int(snakemake.wildcards.seed),
            out_dir=snakemake.output.model,
            log_json=snakemake.output.log_json,
            resume_file=snakemake.params.resume,
            gpus=int(snakemake.resources.get("gpu", 0)),
        )
