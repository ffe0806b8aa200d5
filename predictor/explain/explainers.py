"""The explainers: attributions on the columns the final estimator sees, and the value explained.

Each gives, for N rows, ``Attributions``: ``values`` ``[N, K]`` (the explained output, one
column per class where there are several), ``base`` ``[N, K]`` and ``columns`` ``[N, C, K]``, with
``base + columns.sum(axis=1) == values``. For the exact methods that is how the value is
computed (their guarantee; the tests hold it to the estimator's own output); a sampling
explainer's value is the estimator's output. shap is imported on the
first explanation, not before: a model never asked to explain pays nothing.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from predictor.errors import ExplainUnavailableError
from predictor.explain.plan import LINEAR, MARGIN, PERMUTATION_SHAP, TREE_SHAP, Plan


@dataclass(frozen=True)
class Attributions:
    """The attributions of N rows to the C columns the final estimator sees, for K outputs."""

    values: np.ndarray
    base: np.ndarray
    columns: np.ndarray


class Explainer:
    """Explains the final estimator of one model, on its own columns (built on first use)."""

    def __init__(
        self,
        final: Any,
        plan: Plan,
        background: np.ndarray | None,
        max_evals: int,
        *,
        reference: tuple[np.ndarray, str] | None = None,
    ) -> None:
        """Explain ``final`` by ``plan``.

        ``reference``: a linear model's reference point and what it is (else the background's
        mean, else 0).
        """
        self.final = final
        self.plan = plan
        self.background = background
        self.max_evals = max_evals
        self._shap: Any = None
        self._reference = reference
        if reference is None and background is not None:
            self._reference = (background.mean(axis=0), "background mean")
        self._native: bool | None = None
        """XGBoost's and LightGBM's own TreeSHAP (``pred_contrib``) answers, once it agreed
        with shap's on the first rows explained; None until asked."""

    @property
    def reference(self) -> str:
        """What a linear model's contributions are measured from."""
        return self._reference[1] if self._reference is not None else "zero"

    def explain(self, columns: np.ndarray) -> Attributions:
        """Attribute the output of ``columns`` (``[N, C]`` floats) to each column."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if self.plan.method == LINEAR:
                return self._linear(columns)
            if self.plan.method == TREE_SHAP:
                return self._tree(columns)
            return self._permutation(columns)

    def output_of(self, columns: np.ndarray) -> np.ndarray:
        """The explained output for ``columns``, as ``[N, K]``."""
        if self.plan.output == MARGIN:
            values = self.final.predict(columns, output_margin=True)
        else:
            values = getattr(self.final, self.plan.output)(columns)
        return _as_columns(np.asarray(values, dtype=np.float64))

    def _linear(self, columns: np.ndarray) -> Attributions:
        coef = np.atleast_2d(np.asarray(self.final.coef_, dtype=np.float64))  # [K, C]
        intercept = np.atleast_1d(np.asarray(self.final.intercept_, dtype=np.float64))
        reference = (
            self._reference[0] if self._reference is not None else np.zeros(columns.shape[1])
        )
        shares = (columns - reference)[:, :, None] * coef.T[None, :, :]  # [N, C, K]
        return _exact(shares, intercept + coef @ reference)

    def _tree(self, columns: np.ndarray) -> Attributions:
        if self._shap is None:
            shap = _shap()
            try:
                self._shap = shap.TreeExplainer(self.final)
            except Exception as e:  # noqa: BLE001 - shap names what it cannot take
                raise ExplainUnavailableError(
                    f"shap's TreeExplainer cannot take this {type(self.final).__name__}: "
                    f"{type(e).__name__}"
                ) from e
        if self._native:
            native = _native_contributions(self.final, columns)
            if native is not None:
                return native
        shares = np.asarray(self._shap.shap_values(columns), dtype=np.float64)
        if shares.ndim == 2:
            shares = shares[:, :, None]
        found = _exact(shares, np.asarray(self._shap.expected_value, dtype=np.float64))
        if self._native is None:  # asked once: does the library's own TreeSHAP agree?
            native = _native_contributions(self.final, columns)
            self._native = native is not None and _agree(native, found)
        return found

    def _permutation(self, columns: np.ndarray) -> Attributions:
        assert self.plan.method == PERMUTATION_SHAP and self.background is not None
        shap = _shap()
        sampler = shap.PermutationExplainer(  # made per call, so that a seed fixes the answer
            getattr(self.final, self.plan.output),
            shap.maskers.Independent(self.background, max_samples=len(self.background)),
            seed=0,
        )
        evals = max(self.max_evals, 2 * columns.shape[1] + 1)
        result = sampler(columns, max_evals=evals, silent=True)
        shares = np.asarray(result.values, dtype=np.float64)
        if shares.ndim == 2:
            shares = shares[:, :, None]
        base = _as_columns(np.asarray(result.base_values, dtype=np.float64))
        return Attributions(values=self.output_of(columns), base=base, columns=shares)


def _native_contributions(final: Any, columns: np.ndarray) -> Attributions | None:
    """XGBoost's or LightGBM's own TreeSHAP (``pred_contrib``), as ``Attributions``."""
    kind = type(final).__name__
    if kind.startswith("XGB"):
        import xgboost

        booster = final.get_booster()
        matrix = xgboost.DMatrix(columns, feature_names=booster.feature_names)
        raw = np.asarray(booster.predict(matrix, pred_contribs=True), dtype=np.float64)
    elif kind.startswith("LGBM"):
        raw = np.asarray(final.predict(columns, pred_contrib=True), dtype=np.float64)
    else:
        return None
    width = columns.shape[1] + 1  # each output's contributions, then its bias
    raw = raw.reshape(len(columns), -1, width)  # [N, K, C + 1]
    shares = raw[:, :, :-1].transpose(0, 2, 1)
    return _exact(shares, raw[:, :, -1])


def _agree(native: Attributions, shap_found: Attributions, tolerance: float = 1e-5) -> bool:
    """Whether two sets of attributions are the same, to ``tolerance`` (XGBoost's are 32-bit)."""
    if native.columns.shape != shap_found.columns.shape:
        return False
    scale = max(1.0, float(np.abs(shap_found.values).max(initial=0.0)))
    gap = max(
        float(np.abs(native.columns - shap_found.columns).max(initial=0.0)),
        float(np.abs(native.base - shap_found.base).max(initial=0.0)),
    )
    return gap <= tolerance * scale


def _exact(shares: np.ndarray, base: np.ndarray) -> Attributions:
    """Exact attributions, the explained value being their sum over the base.

    That is the method's guarantee; the tests hold it to the estimator's own output.
    """
    base = np.broadcast_to(
        base if base.ndim == 2 else np.atleast_1d(base), (len(shares), shares.shape[2])
    ).copy()
    return Attributions(values=base + shares.sum(axis=1), base=base, columns=shares)


def _as_columns(values: np.ndarray) -> np.ndarray:
    return values.reshape(len(values), -1)


def _shap() -> Any:
    try:
        import shap
    except ImportError as e:
        raise ExplainUnavailableError(
            "explanations need shap, which is not installed: install the extra 'explain' "
            "(pip install 'kserve-sklearn-predictor[explain]', or EXTRAS=explain for the image)"
        ) from e
    return shap
