# Tables and figures: cheap, local, and each a pure function of files earlier stages wrote. One
# tables rule and one figure rule per public target (asvd/pipeline/study.py's scopes), defined
# once below; which figures a target draws, what they read and their captions come from
# asvd/analysis/figure_registry.py.
# scope -> its tables' rule, its figures' rule, report category
REPORT_RULES = {
    "study": ("summary_tables", "plot_figure", None),
    "comparison": ("baseline_tables", "baseline_figure", "Every baseline"),
    "ablation": ("ablation_tables", "ablation_figure", "Retention ablation"),
    "tradeoff": ("tradeoff_tables", "tradeoff_figure", "Learning-retention trade-off"),
}


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


for _scope, (_tables, _figure, _category) in REPORT_RULES.items():
    _folder = STUDY.layout.scope(STUDY.scopes[_scope].folder)

    rule:
        name:
            _tables
        input:
            summaries=STUDY.table_summaries(_scope),
        output:
            csv=report(
                f"{_folder}/tables/summary.csv",
                caption="../report/table_csv.rst",
                category=_category or "Tables",
            ),
            md=f"{_folder}/tables/summary.md",
            tex=f"{_folder}/tables/summary.tex",
            html=report(
                f"{_folder}/tables/summary.html",
                caption="../report/table.rst",
                category=_category or "Tables",
            ),
            environment=report(
                f"{_folder}/tables/environment.csv",
                caption="../report/environment.rst",
                category=_category or "Tables",
            ),
        log:
            f"{LOGS}/{_tables}.log",
        conda:
            "../envs/asvd.yaml"
        params:
            code=code_version("summary_tables"),
        script:
            "../scripts/summary_tables.py"

    rule:
        name:
            _figure
        input:
            figure_files(_scope),
        output:
            png=report(
                f"{_folder}/figures/{{figure}}.png",
                caption="../report/figure.rst",
                category=_category or "Figures",
            ),
            pdf=f"{_folder}/figures/{{figure}}.pdf",
        log:
            f"{LOGS}/{_figure}/{{figure}}.log",
        wildcard_constraints:
            figure="[a-z0-9_]+",
        conda:
            "../envs/asvd.yaml"
        params:
            inputs=figure_structure(_scope),
            caption=lambda wildcards: figure_registry.caption(wildcards.figure),
            options=config["figures"],
            code=code_version("plot_figure"),
        script:
            "../scripts/plot_figure.py"


rule paper_tables:
    input:
        summaries=STUDY.run_summaries(),
        reference=lambda wildcards: STUDY.paper_reference(),
    output:
        csv=report(
            f"{RESULTS}/tables/paper.csv",
            caption="../report/table_csv.rst",
            category="Tables",
        ),
        md=f"{RESULTS}/tables/paper.md",
        tex=f"{RESULTS}/tables/paper.tex",
        html=report(
            f"{RESULTS}/tables/paper.html",
            caption="../report/table.rst",
            category="Tables",
        ),
    log:
        f"{LOGS}/paper_tables.log",
    conda:
        "../envs/asvd.yaml"
    params:
        method_names=lambda wildcards: config["paper_table"]["method_names"],
        code=code_version("paper_tables"),
    script:
        "../scripts/paper_tables.py"
