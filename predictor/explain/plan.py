"""How a model is explained, decided once at load from its kind alone.

Nothing is imported or computed: the plan names the method, the estimator output it explains,
and whether the attributions are exact.

- **tree_shap** (exact): scikit-learn's trees, forests and gradient boosting, XGBoost and
  LightGBM, with shap's path-dependent TreeSHAP (no background). A forest explains
  ``predict_proba``; a boosted classifier its raw score (``decision_function``; XGBoost's
  ``margin``, which it has no method for); a regressor ``predict``.
- **linear** (exact): a linear model's coefficient times the feature's distance from a
  reference, which is the mean of the bundle's background rows, or 0 (the intercept is then the
  base) when the bundle has none. It explains ``decision_function`` (classifiers) or ``predict``.
- **permutation_shap** (not exact): any other model, with shap's permutation explainer over the
  bundle's background rows, within ``explain_max_evals`` model calls per row.

The final step of a pipeline is explained on the columns the steps before it make; the
attributions are then summed back to the request's features (``grouping``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TREE_SHAP = "tree_shap"
LINEAR = "linear"
PERMUTATION_SHAP = "permutation_shap"

_FORESTS = {
    "DecisionTreeClassifier", "ExtraTreeClassifier", "RandomForestClassifier",
    "ExtraTreesClassifier",
}  # fmt: skip
_TREE_REGRESSORS = {
    "DecisionTreeRegressor", "ExtraTreeRegressor", "RandomForestRegressor",
    "ExtraTreesRegressor", "GradientBoostingRegressor", "HistGradientBoostingRegressor",
    "XGBRegressor", "LGBMRegressor",
}  # fmt: skip
_BOOSTED_CLASSIFIERS = {
    "GradientBoostingClassifier",
    "HistGradientBoostingClassifier",
    "LGBMClassifier",
}
MARGIN = "margin"
"""XGBoost's raw score (``predict(output_margin=True)``), which has no method of its own."""


@dataclass(frozen=True)
class Plan:
    """How one model is explained."""

    method: str
    output: str
    """The estimator output explained: predict_proba, decision_function, predict or margin."""
    exact: bool


def split_pipeline(estimator: Any) -> tuple[Any, Any]:
    """(the preprocessing, or None; the final estimator) of a model."""
    steps = getattr(estimator, "steps", None)
    if not steps:
        return None, estimator
    final = steps[-1][1]
    return (estimator[:-1] if len(steps) > 1 else None), final


def plan_for(estimator: Any, *, has_background: bool) -> tuple[Plan | None, str]:
    """How ``estimator`` is explained, and why (or why it cannot be, with the plan None)."""
    _, final = split_pipeline(estimator)
    kind = type(final).__name__
    classes = getattr(final, "classes_", None)
    if kind in _FORESTS:
        return Plan(TREE_SHAP, "predict_proba", True), f"TreeSHAP over the {kind}"
    if kind in _TREE_REGRESSORS:
        return Plan(TREE_SHAP, "predict", True), f"TreeSHAP over the {kind}"
    binary = classes is not None and len(classes) == 2
    if kind == "XGBClassifier":
        return Plan(TREE_SHAP, MARGIN, True), "TreeSHAP over the XGBClassifier's margin"
    if kind in _BOOSTED_CLASSIFIERS and (binary or kind != "GradientBoostingClassifier"):
        return Plan(TREE_SHAP, "decision_function", True), f"TreeSHAP over the {kind}"
    if _is_linear(final):
        output = "decision_function" if classes is not None else "predict"
        return Plan(LINEAR, output, True), f"coefficients of the {kind}"
    methods = ("predict_proba", "decision_function", "predict")
    explained = next((m for m in methods if callable(getattr(final, m, None))), None)
    if explained is None:
        return None, f"a {kind} makes no prediction to explain (it only transforms)"
    if not has_background:
        return None, (
            f"a {kind} is explained by sampling, which needs background rows: publish the model "
            "as a bundle with a confidence or end-to-end set (its rows are the background)"
        )
    return Plan(PERMUTATION_SHAP, explained, False), f"permutation SHAP over the {kind}"


def _is_linear(final: Any) -> bool:
    module = type(final).__module__
    linear = module.startswith("sklearn.linear_model") or type(final).__name__ in (
        "LinearSVC",
        "LinearSVR",
    )
    return linear and hasattr(final, "coef_") and hasattr(final, "intercept_")
