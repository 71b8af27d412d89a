# Tables and figures: cheap, local, and each a pure function of files earlier stages wrote.
localrules:
    summary_tables,
    plot_figure,


def _matrices(method):
    return {
        f"order {order}": RUN.format(method=method, order=order, seed=config["run"]["seeds"][0])
        + "/accuracy_matrix.csv"
        for order in config["run"]["orders"]
    }


def _representative_steps(method, name, with_base):
    run = first_runs_per_method()[method]
    return ([f"{BASE}/{name}"] if with_base else []) + step_paths(run, name)


def figure_inputs(wildcards):
    """Per figure, the files it draws (dicts keep the labels the plot functions need)."""
    methods = config["run"]["methods"]
    name = wildcards.figure
    if name.startswith("accuracy_matrix_"):
        return {"matrices": _matrices(name.removeprefix("accuracy_matrix_"))}
    if name == "task_curves":
        return {"matrices": {method: _matrices(method) for method in methods}}
    if name in ("aa_bwt", "general_retention"):
        return {"summaries": run_summaries()}
    if name == "frozen_ranks":
        return {
            "train_logs": {
                method: _representative_steps(method, "train_log.json", with_base=False)
                for method in methods
                if is_constrained(method)
            }
        }
    if name == "singular_spectra":
        return {
            "svd_caches": {
                method: _representative_steps(method, "svd.safetensors", with_base=True)
                for method in methods
            }
        }
    raise ValueError(f"unknown figure {name!r}")


def _flat_inputs(wildcards):
    """Snakemake needs a flat file list; the script gets the structure via params."""
    files = []

    def walk(value):
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            files.extend(value)
        else:
            files.append(value)

    walk(figure_inputs(wildcards))
    return files


rule summary_tables:
    input:
        summaries=run_summaries(),
    output:
        csv=RESULTS + "/tables/summary.csv",
        md=RESULTS + "/tables/summary.md",
        tex=RESULTS + "/tables/summary.tex",
    params:
        code=code_version("io", "tables"),
    log:
        LOGS + "/summary_tables.log",
    conda:
        "../envs/asvd.yaml"
    message:
        "Summary tables (CSV, Markdown, LaTeX)"
    script:
        "../scripts/summary_tables.py"


rule plot_figure:
    input:
        _flat_inputs,
    output:
        png=RESULTS + "/figures/{figure}.png",
        pdf=RESULTS + "/figures/{figure}.pdf",
    params:
        inputs=figure_inputs,
        spectra_targets=config["figures"]["spectra_targets"],
        code=code_version("figures", "io", "metrics"),
    log:
        LOGS + "/plot_figure/{figure}.log",
    wildcard_constraints:
        figure="[a-z0-9_]+",
    conda:
        "../envs/asvd.yaml"
    message:
        "Figure {wildcards.figure}"
    script:
        "../scripts/plot_figure.py"
