"""Snakemake adapter: the method's premise over one run (asvd.evaluation.premise.measure_run)."""
from asvd.pipeline.runtime import stage

with stage(snakemake):
    from asvd.evaluation.premise import measure_run

    tasks = snakemake.params.tasks
    measure_run(
        checkpoints=list(snakemake.input.checkpoints),
        svd_caches=list(snakemake.input.svd),
        train_logs=list(snakemake.input.train_logs),
        tasks=tasks,
        test_files=dict(zip(tasks, snakemake.input.tests)),
        train_files=dict(zip(tasks, snakemake.input.train)),
        method=snakemake.params.method,
        settings=snakemake.params.train,
        samples=snakemake.params.samples,
        seed=int(snakemake.wildcards.seed),
        out_json=snakemake.output.premise,
        reference=snakemake.params.reference or None,
        reference_name=snakemake.params.reference_name,
    )
