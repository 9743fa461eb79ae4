"""Which study a model, an attribution method and a (model, method) pair belong to: the one place
that decides it (models.csv's, methods.csv's and per_image.parquet's ``study`` columns come from here).

Study A (Nourelahi et al. 2022) compares vanilla, adversarially robust and AdvProp models with
post-hoc attribution methods; study B (Zeng et al. 2021) is the learned explainer. A model is in
study B when it has an explainer branch (``algorithm: explainer``), or when it is an explainer's twin
that no study-A method explains; a method is in study B when its registered class is learned (family
"learned", e.g. ``explainer``) or it runs models other than the explained one (``needed_models``, e.g.
``robust_counterpart``); everything else is in study A. A (model, method) pair is in study A only
when both are.
"""
from __future__ import annotations

from robustxai.config import explainer_models, explainer_twins, method_name, needed_models

STUDY_A, STUDY_B = "A", "B"
#: the method family of learned explainers
LEARNED = "learned"


def method_study(key: str, settings: dict) -> str:
    """The study of one attribution.methods entry (name -> its settings)."""
    from robustxai.attribution import method_class

    learned = method_class(method_name(key, settings)).family == LEARNED
    return STUDY_B if learned or needed_models(key, settings) else STUDY_A


def model_studies(config: dict, methods: dict[str, dict]) -> dict[str, str]:
    """Every configured model -> its study; ``methods``: the attribution section's resolved methods
    (name -> settings with their ``models``), {} without one."""
    explainers = set(explainer_models(config))
    twins = set(explainer_twins(config))
    attributed = {model for key, settings in methods.items() if method_study(key, settings) == STUDY_A
                  for model in settings["models"]}
    return {name: STUDY_B if name in explainers or (name in twins and name not in attributed) else STUDY_A
            for name in config["models"]}


def pair_studies(models, methods, by_model: dict[str, str], by_method: dict[str, str]):
    """The study of each row of two aligned pandas Series of model and method names (a Series of "A" /
    "B"); ``by_model`` / ``by_method``: each one's study (one missing counts as study B)."""
    in_a = models.map(by_model).eq(STUDY_A) & methods.map(by_method).eq(STUDY_A)
    return in_a.map({True: STUDY_A, False: STUDY_B})
