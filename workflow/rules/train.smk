rule finetune_task:
    input:
        checkpoint=STUDY.previous_checkpoint,
        svd=STUDY.previous_svd,
        train=STUDY.task_train_data,
        previous_train=STUDY.previous_train_data,
        earlier_train=STUDY.earlier_train_data,
        base=STUDY.shared_adapter_base,
        tuned=STUDY.tuning_of_run,
    output:
        model=directory(f"{STEP}/{MODEL}"),
        log_json=f"{STEP}/{TRAIN_LOG}",
    log:
        f"{LOGS}/finetune_task/{PATHS.job_key}.log",
    benchmark:
        f"{BENCH}/finetune_task/{PATHS.job_key}.tsv"
    conda:
        "../envs/asvd.yaml"
    threads: config["threads"]["finetune_task"]
    resources:
        **config["resources"]["finetune_task"],
    params:
        method=STUDY.method_block,
        train=STUDY.task_train_settings,
        task=STUDY.task_of_step,
        earlier_tasks=STUDY.earlier_tasks,
        tuned_keys=STUDY.tuned_keys,
        task_count=lambda wildcards: len(STUDY.run_tasks(wildcards)),
        resume=PATHS.resume,
        code=code_version("finetune_task"),
    script:
        "../scripts/finetune_task.py"


# The order's first task trained from the base model once per candidate of the tuning grid and
# scored on a held-out share of its training data: the lr (and trr) every task of the method's
# runs in that order then uses. One job trains every candidate, each as a training job would.
rule tune_first_task:
    input:
        base=f"{BASE}/{MODEL}",
        svd=STUDY.first_task_svd,
        train=lambda wildcards: STUDY.data(STUDY.run_tasks(wildcards)[0]),
    output:
        tuning=PATHS.tuning,
    log:
        f"{LOGS}/tune_first_task/{{method}}/order{{order}}.log",
    benchmark:
        f"{BENCH}/tune_first_task/{{method}}/order{{order}}.tsv"
    conda:
        "../envs/asvd.yaml"
    threads: config["threads"]["finetune_task"]
    resources:
        # a training job's, its runtime once per candidate (a training and an evaluation each)
        mem_mb=config["resources"]["finetune_task"]["mem_mb"],
        gpu=config["resources"]["finetune_task"]["gpu"],
        runtime=lambda wildcards: config["resources"]["finetune_task"]["runtime"]
        * len(STUDY.tuning_candidates(wildcards.method)),
    params:
        method=STUDY.method_block,
        train=STUDY.first_task_settings,
        task=lambda wildcards: STUDY.run_tasks(wildcards)[0],
        task_count=lambda wildcards: len(STUDY.run_tasks(wildcards)),
        grid=lambda wildcards: STUDY.tuning["grid"],
        validation=lambda wildcards: STUDY.tuning["validation"],
        seed=lambda wildcards: STUDY.tuning["seed"],
        evaluation=config["evaluation"],
        code=code_version("tune_first_task"),
    script:
        "../scripts/tune_first_task.py"
