localrules:
    aggregate_models,


rule aggregate_models:
    input:
        expand(f"{R}/evaluation/{{model}}.json", model=MODELS),
    output:
        table=f"{R}/tables/models.csv",
        plot=f"{R}/plots/accuracy.png",
        plot_data=f"{R}/plots/accuracy.csv",
    log:
        f"{R}/logs/aggregate/models.log",
    conda:
        ENV
    script:
        "../scripts/aggregate_models.py"
