"""The study's aggregation: per (model, method) tables with confidence intervals, correlations,
method rankings, algorithm comparisons, plots and the paper's findings checked against a run.
Pure functions on DataFrames; the jobs that read and write files are in ``robustxai.pipeline.aggregate``."""
