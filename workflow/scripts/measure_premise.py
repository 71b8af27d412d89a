"""Snakemake adapter: the method's premise over one run (asvd.evaluation.premise.measure_run)."""
from asvd.pipeline.runtime import stage

with stage(snakemake):
    from asvd.evaluation.premise import measure_run
    from asvd.train.choice import apply_choice, read_choice

    tasks = snakemake.params.tasks
    reference = snakemake.params.reference or None
    if snakemake.input.reference_tuned:  # the reference's rule with the trr tuned in this order
        choice = read_choice(snakemake.input.reference_tuned[0])
        reference, _ = apply_choice(reference, {}, choice)
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
        reference=reference,
        reference_settings=snakemake.params.reference_train or None,
        reference_name=snakemake.params.reference_name,
    )
