"""One model's explanations: decoded like ``:predict``, attributed, summed back, answered as v1.

``Explanations`` is built at load from what is cheap to know (the plan, the map back to the
request's features); the explainer itself (and shap) comes on the first request. Rows are
decoded and checked exactly as for ``:predict``, so bad input is the same 400.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from predictor.errors import (
    ExplainNeedsBackgroundError,
    ExplainTooLargeError,
    ExplainUnavailableError,
    PayloadError,
)
from predictor.explain.explainers import Attributions, Explainer
from predictor.explain.grouping import UntraceableError, source_columns
from predictor.explain.plan import LINEAR, Plan, plan_for, split_pipeline
from predictor.inference.batch import Batch
from predictor.inference.signature import Signature, dense
from predictor.protocol.tensors import labels_as
from predictor.protocol.v1 import decode_v1
from predictor.sections import Explain

logger = logging.getLogger(__name__)

MAX_BACKGROUND_ROWS = 100
"""Background rows kept for sampling explainers and a linear model's reference."""


def explanations_for(loaded: Any, bounds: Explain) -> Explanations:
    """The explanations of a loaded model.

    Its bundle's acceptance rows are the background, and the feature means its manifest
    recorded at publish (``--sample``) a linear model's reference.
    """
    sets = loaded.acceptance_sets
    background = next(
        (s["instances"] for s in (sets.confidence, sets.e2e) if s and s.get("instances")), None
    )
    manifest = loaded.manifest
    return Explanations(
        loaded.estimator,
        loaded.signature,
        background_rows=background,
        max_rows=bounds.max_rows,
        max_evals=bounds.max_evals,
        means=manifest.feature_means if manifest is not None else None,
    )


class Explanations:
    """How one loaded model answers ``:explain``."""

    def __init__(
        self,
        estimator: Any,
        signature: Signature,
        *,
        background_rows: list[Any] | None,
        max_rows: int,
        max_evals: int,
        means: tuple[float, ...] | None = None,
    ) -> None:
        self.estimator = estimator
        self.signature = signature
        self.max_rows = max_rows
        self.features = _feature_keys(signature)
        self.pre, final = split_pipeline(estimator)
        self.plan: Plan | None = None
        self.reason = ""
        self._needs_background = False
        self._map: np.ndarray | None = None
        self._explainer: Explainer | None = None
        try:
            self._prepare(final, background_rows, max_evals, means)
        except Exception:  # noqa: BLE001 - explanations are an addition, never a reason not to serve
            logger.exception("explanations could not be prepared for this model; :explain is off")
            self.plan, self.reason = None, "they could not be prepared (the server's log says why)"

    def _prepare(
        self,
        final: Any,
        background_rows: list[Any] | None,
        max_evals: int,
        means: tuple[float, ...] | None,
    ) -> None:
        self.plan, self.reason = plan_for(self.estimator, has_background=bool(background_rows))
        if self.plan is None:
            sampled, _ = plan_for(self.estimator, has_background=True)
            self._needs_background = sampled is not None
            return
        try:
            width = 1 if self.signature.text else len(self.features)
            self._map = source_columns(self.pre, width, self.signature.feature_names)
        except UntraceableError as e:
            self.plan, self.reason = None, str(e)
            return
        background = self._background(background_rows) if background_rows else None
        reference = None
        if means is not None and self.pre is None and len(means) == len(self.features):
            reference = (np.asarray(means, dtype=np.float64), "publish sample mean")
        self._explainer = Explainer(final, self.plan, background, max_evals, reference=reference)

    def describe(self) -> dict[str, Any]:
        """What the metadata and the home page say about explanations."""
        if self.plan is None:
            return {"available": False, "reason": self.reason}
        return {
            "available": True,
            "method": self.plan.method,
            "output": self.plan.output,
            "exact": self.plan.exact,
            "features": list(self.features),
        }

    def explain_v1(self, body: Any, version: str) -> dict[str, Any]:
        """The answer to a v1 ``:explain`` body (a ``:predict`` body and its parameters)."""
        plan = self.ready_plan()
        every_class = _parameters(body, plan)
        explained = self.attribute(decode_v1(body, self.signature, frame=True))
        answer: dict[str, Any] = {
            "predictions": explained.predictions.tolist(),
            "explanations": self._rows(explained, every_class),
            "method": plan.method,
            "exact": plan.exact,
            "model_version": version,
        }
        if plan.method == LINEAR:
            answer["reference"] = self.reference
        return answer

    def ready_plan(self) -> Plan:
        """The plan; ``ExplainUnavailableError`` (501) when the model cannot be explained."""
        if self.plan is None or self._explainer is None:
            if self._needs_background:
                raise ExplainNeedsBackgroundError(f"this model cannot be explained: {self.reason}")
            raise ExplainUnavailableError(f"this model cannot be explained: {self.reason}")
        return self.plan

    @property
    def reference(self) -> str:
        """What a linear model's contributions are measured from."""
        return self._explainer.reference if self._explainer is not None else "zero"

    def attribute(self, batch: Batch) -> Explained:
        """The predictions of a decoded batch and their attributions to the request's features.

        Raises:
            ExplainTooLargeError: more rows than one request may hold (413).
        """
        self.ready_plan()
        assert self._explainer is not None
        if batch.n_rows > self.max_rows:
            raise ExplainTooLargeError(batch.n_rows, self.max_rows)
        attributions = self._explainer.explain(self._columns(batch.features))
        width = attributions.values.shape[1]
        labels = _labels_of(self.signature, width)
        return Explained(
            predictions=self._predictions(batch, attributions, labels),
            values=attributions.values,
            base=attributions.base,
            shares=self._summed_back(attributions),
            labels=labels,
        )

    def _predictions(
        self, batch: Batch, attributions: Attributions, labels: list[Any] | None
    ) -> np.ndarray:
        """The default output's labels, without a model call where the attributions hold them.

        A classifier's ``predict`` is the arg-max of its probabilities or scores (for two
        classes, the second one where the score is above 0), a regressor's is the value
        explained; anything else is asked of the estimator.
        """
        default = self.signature.outputs[0]
        datatype = self.signature.output(default).datatype
        output = self.plan.output if self.plan is not None else ""
        values = attributions.values
        if labels is not None and output != "predict":
            classes = np.asarray(self.signature.classes)
            if values.shape[1] == len(classes) and len(classes) > 1:
                return labels_as(classes[values.argmax(axis=1)], datatype)
            if values.shape[1] == 1 and len(classes) == 2 and output != "predict_proba":
                return labels_as(classes[(values[:, 0] > 0).astype(int)], datatype)
        if output == "predict" and labels is None and values.shape[1] == 1:
            return labels_as(values[:, 0], datatype)
        return labels_as(dense(getattr(self.estimator, default)(batch.features)), datatype)

    def _columns(self, features: Any) -> np.ndarray:
        columns = self.pre.transform(features) if self.pre is not None else features
        return np.asarray(dense(columns), dtype=np.float64)

    def _background(self, rows: list[Any]) -> np.ndarray | None:
        try:
            batch = decode_v1({"instances": rows[:MAX_BACKGROUND_ROWS]}, self.signature)
            return self._columns(batch.features)
        except PayloadError as e:
            logger.warning("the bundle's rows cannot serve as a background: %s", e)
            return None

    def _summed_back(self, attributions: Attributions) -> np.ndarray:
        """``[N, C, K]`` attributions on the model's columns as ``[N, F, K]`` on the request's."""
        assert self._map is not None
        columns = attributions.columns
        grouping = np.zeros((columns.shape[1], len(self.features)))
        grouping[np.arange(columns.shape[1]), self._map] = 1.0  # column c belongs to feature f
        summed: np.ndarray = np.einsum("nck,cf->nfk", columns, grouping)
        return summed

    def _rows(self, explained: Explained, every_class: bool) -> list[dict[str, Any]]:
        """One explanation per row: its predicted class's, or ``by_class`` for every class."""
        assert self.plan is not None
        output, labels, features = self.plan.output, explained.labels, self.features
        values, base = explained.values.tolist(), explained.base.tolist()
        shares = explained.shares.transpose(0, 2, 1).tolist()  # [N][K][F], as Python floats
        rows = []
        for i in range(len(values)):
            entries = []
            for k in range(len(values[i])) if every_class else [explained.chosen(i)]:
                entry: dict[str, Any] = {"output": output}
                if labels is not None:
                    entry["class"] = labels[k]
                entry["value"] = values[i][k]
                entry["base_value"] = base[i][k]
                entry["contributions"] = dict(zip(features, shares[i][k], strict=True))
                entries.append(entry)
            rows.append({"by_class": entries} if every_class else entries[0])
        return rows


@dataclass(frozen=True)
class Explained:
    """N predictions, and each one's attributions for each of K explained output columns."""

    predictions: np.ndarray
    values: np.ndarray
    """``[N, K]``: the explained output."""
    base: np.ndarray
    """``[N, K]``: its base value."""
    shares: np.ndarray
    """``[N, F, K]``: each request feature's share."""
    labels: list[Any] | None
    """The class of each of the K columns; None for a regressor."""

    def chosen(self, i: int) -> int:
        """The column that explains row ``i``'s prediction: its predicted class's."""
        if self.labels is None or self.values.shape[1] == 1:
            return 0
        predicted = self.predictions[i]
        return self.labels.index(predicted) if predicted in self.labels else 0


def _labels_of(signature: Signature, width: int) -> list[Any] | None:
    """The class each of ``width`` output columns is for; None for a regressor."""
    if signature.classes is None:
        return None
    classes = list(signature.classes)
    if width == len(classes):
        return classes
    if width == 1 and len(classes) == 2:
        return [classes[1]]  # a binary model's one score is for its positive class
    return None


def _parameters(body: Any, plan: Plan) -> bool:
    """Whether every class is asked for; refuses an output other than the one explained."""
    parameters = body.get("parameters") if isinstance(body, dict) else None
    parameters = parameters if isinstance(parameters, dict) else {}
    output = parameters.get("output")
    if output is not None and output != plan.output:
        raise PayloadError(
            f"parameters.output: this model's explanations are of {plan.output}; "
            "no other output can be explained"
        )
    classes = parameters.get("classes")
    if classes not in (None, "all"):
        raise PayloadError(
            'parameters.classes: expected "all", or leave it out for the predicted class'
        )
    return classes == "all"


def _feature_keys(signature: Signature) -> tuple[str, ...]:
    """The request's features, as contributions are keyed."""
    if signature.text:
        return ("text",)
    if signature.feature_names is not None:
        return signature.feature_names
    return tuple(f"x{j}" for j in range(signature.n_features or 0))
