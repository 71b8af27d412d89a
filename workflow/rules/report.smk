# Tables and figures: cheap, local, and each a pure function of files earlier stages wrote.
localrules:
    summary_tables,
    paper_tables,
    plot_figure,
    baseline_tables,
    baseline_figure,
    ablation_tables,
    ablation_figure,
    tradeoff_tables,
    tradeoff_figure,


rule summary_tables:
    input:
        summaries=run_summaries() + reference_summaries(),
    output:
        csv=report(
            f"{RESULTS}/tables/summary.csv",
            caption="../report/table.rst",
            category="Tables",
        ),
        md=f"{RESULTS}/tables/summary.md",
        tex=f"{RESULTS}/tables/summary.tex",
        environment=report(
            f"{RESULTS}/tables/environment.csv",
            caption="../report/environment.rst",
            category="Tables",
        ),
    log:
        f"{LOGS}/summary_tables.log",
    conda:
        "../envs/asvd.yaml"
    params:
        code=code_version("summary_tables"),
    message:
        "Summary tables (CSV, Markdown, LaTeX)"
    script:
        "../scripts/summary_tables.py"


rule paper_tables:
    input:
        summaries=run_summaries(),
        reference=lambda wildcards: paper_reference(),
    output:
        csv=report(
            f"{RESULTS}/tables/paper.csv",
            caption="../report/table.rst",
            category="Tables",
        ),
        md=f"{RESULTS}/tables/paper.md",
        tex=f"{RESULTS}/tables/paper.tex",
    log:
        f"{LOGS}/paper_tables.log",
    conda:
        "../envs/asvd.yaml"
    params:
        method_names=lambda wildcards: config["paper_table"]["method_names"],
        code=code_version("paper_tables"),
    message:
        "The paper's table with this study's values beside it"
    script:
        "../scripts/paper_tables.py"


rule plot_figure:
    input:
        _flat_inputs,
    output:
        png=report(
            f"{RESULTS}/figures/{{figure}}.png",
            caption="../report/figure.rst",
            category="Figures",
        ),
        pdf=f"{RESULTS}/figures/{{figure}}.pdf",
    log:
        f"{LOGS}/plot_figure/{{figure}}.log",
    wildcard_constraints:
        figure="[a-z0-9_]+",
    conda:
        "../envs/asvd.yaml"
    params:
        inputs=figure_inputs,
        spectra_targets=config["figures"]["spectra_targets"],
        code=code_version("plot_figure"),
    message:
        "Figure {wildcards.figure}"
    script:
        "../scripts/plot_figure.py"


# The same tables and comparison figures over every method defined under `methods`
# (target all_baselines), under results/<experiment>/baselines/.
use rule summary_tables as baseline_tables with:
    input:
        summaries=run_summaries(ALL_METHODS) + reference_summaries(),
    output:
        csv=report(
            f"{RESULTS}/baselines/tables/summary.csv",
            caption="../report/table.rst",
            category="Every baseline",
        ),
        md=f"{RESULTS}/baselines/tables/summary.md",
        tex=f"{RESULTS}/baselines/tables/summary.tex",
        environment=report(
            f"{RESULTS}/baselines/tables/environment.csv",
            caption="../report/environment.rst",
            category="Every baseline",
        ),
    log:
        f"{LOGS}/baseline_tables.log",
    message:
        "Summary tables of every method (CSV, Markdown, LaTeX)"


use rule plot_figure as baseline_figure with:
    input:
        lambda wildcards: _flat_inputs(wildcards, ALL_METHODS),
    output:
        png=report(
            f"{RESULTS}/baselines/figures/{{figure}}.png",
            caption="../report/figure.rst",
            category="Every baseline",
        ),
        pdf=f"{RESULTS}/baselines/figures/{{figure}}.pdf",
    log:
        f"{LOGS}/baseline_figure/{{figure}}.log",
    params:
        inputs=lambda wildcards: figure_inputs(wildcards, ALL_METHODS),
        spectra_targets=config["figures"]["spectra_targets"],
        code=code_version("plot_figure"),
    message:
        "Figure {wildcards.figure} of every method"


# The retention ablation (target all_ablations) under results/<experiment>/ablations/.
use rule summary_tables as ablation_tables with:
    input:
        summaries=run_summaries(ABLATION_METHODS),
    output:
        csv=report(
            f"{RESULTS}/ablations/tables/summary.csv",
            caption="../report/table.rst",
            category="Retention ablation",
        ),
        md=f"{RESULTS}/ablations/tables/summary.md",
        tex=f"{RESULTS}/ablations/tables/summary.tex",
        environment=report(
            f"{RESULTS}/ablations/tables/environment.csv",
            caption="../report/environment.rst",
            category="Retention ablation",
        ),
    log:
        f"{LOGS}/ablation_tables.log",
    message:
        "Summary tables of the retention ablation (CSV, Markdown, LaTeX)"


use rule plot_figure as ablation_figure with:
    input:
        lambda wildcards: _flat_inputs(wildcards, ABLATION_METHODS),
    output:
        png=report(
            f"{RESULTS}/ablations/figures/{{figure}}.png",
            caption="../report/figure.rst",
            category="Retention ablation",
        ),
        pdf=f"{RESULTS}/ablations/figures/{{figure}}.pdf",
    log:
        f"{LOGS}/ablation_figure/{{figure}}.log",
    params:
        inputs=lambda wildcards: figure_inputs(wildcards, ABLATION_METHODS),
        spectra_targets=config["figures"]["spectra_targets"],
        code=code_version("plot_figure"),
    message:
        "Figure {wildcards.figure} of the retention ablation"


# The learning-retention trade-off (target all_tradeoff) under results/<experiment>/tradeoff/.
use rule summary_tables as tradeoff_tables with:
    input:
        summaries=run_summaries(TRADEOFF_METHODS),
    output:
        csv=report(
            f"{RESULTS}/tradeoff/tables/summary.csv",
            caption="../report/table.rst",
            category="Learning-retention trade-off",
        ),
        md=f"{RESULTS}/tradeoff/tables/summary.md",
        tex=f"{RESULTS}/tradeoff/tables/summary.tex",
        environment=report(
            f"{RESULTS}/tradeoff/tables/environment.csv",
            caption="../report/environment.rst",
            category="Learning-retention trade-off",
        ),
    log:
        f"{LOGS}/tradeoff_tables.log",
    message:
        "Summary tables of the learning-retention trade-off (CSV, Markdown, LaTeX)"


use rule plot_figure as tradeoff_figure with:
    input:
        lambda wildcards: _flat_inputs(wildcards, TRADEOFF_METHODS),
    output:
        png=report(
            f"{RESULTS}/tradeoff/figures/{{figure}}.png",
            caption="../report/figure.rst",
            category="Learning-retention trade-off",
        ),
        pdf=f"{RESULTS}/tradeoff/figures/{{figure}}.pdf",
    log:
        f"{LOGS}/tradeoff_figure/{{figure}}.log",
    params:
        inputs=lambda wildcards: figure_inputs(wildcards, TRADEOFF_METHODS),
        spectra_targets=config["figures"]["spectra_targets"],
        code=code_version("plot_figure"),
    message:
        "Figure {wildcards.figure} of the learning-retention trade-off"
