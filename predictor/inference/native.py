"""The native engine: the model converted to ONNX (skl2onnx) and run by ONNX Runtime.

Tree ensembles are where it pays: ONNX Runtime walks a forest in C++ several times faster than
our numpy walk, and one thread is enough. Linear models stay on ``LinearEngine``: their model
call is a small share of a request, and ONNX Runtime costs about 43 MB of memory.

What converts (``convertible``): scikit-learn's trees, forests, extra trees, gradient boosting and
histogram gradient boosting, XGBoost's and LightGBM's scikit-learn estimators (their converters
come from onnxmltools), alone or last in a ``Pipeline`` of numeric steps. The converted model takes
one float32 tensor, as the trees compare features in float32 anyway; rows with NaN go to
scikit-learn, as on the compiled engines. A converted model serves only after it has answered
the probe rows as scikit-learn does (``verify_native``): labels identical, probabilities and
values within ``NATIVE_TOLERANCE`` (ONNX Runtime adds up tree outputs in float32).

``threads`` sets ONNX Runtime's intra-op threads per inference (``PREDICTOR_NATIVE_THREADS``,
1 by default so that it does not compete with the event loop and the other requests).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from predictor.inference.engines import CompiledEngine
from predictor.inference.pipelines import is_pipeline
from predictor.inference.trees import FORESTS, TREES

NATIVE_TOLERANCE = 1e-5
"""Largest difference allowed between ONNX Runtime and scikit-learn, relative to the larger of
1 and scikit-learn's value (float32 sums of tree outputs differ from float64 ones near 1e-7)."""

OPSET = {"": 17, "ai.onnx.ml": 3}
"""ONNX operator sets the conversion targets (ai.onnx.ml 3: trees with float64 thresholds)."""

TREE_MODELS = (
    FORESTS
    | TREES
    | {
        ("sklearn.ensemble", n)
        for n in (
            "GradientBoostingClassifier",
            "GradientBoostingRegressor",
            "HistGradientBoostingClassifier",
            "HistGradientBoostingRegressor",
        )
    }
)
EXTERNAL = {
    ("xgboost.sklearn", "XGBClassifier"),
    ("xgboost.sklearn", "XGBRegressor"),
    ("lightgbm.sklearn", "LGBMClassifier"),
    ("lightgbm.sklearn", "LGBMRegressor"),
}


class NativeUnavailableError(Exception):
    """The model cannot run natively; the message says why (it then stays where it is)."""


def _key(estimator: Any) -> tuple[str, str]:
    kind = type(estimator)
    return ".".join(kind.__module__.split(".")[:2]), kind.__name__


def convertible(estimator: Any) -> bool:
    """Whether the estimator (or a pipeline's last step) is a model the native engine takes."""
    last = estimator.steps[-1][1] if is_pipeline(estimator) else estimator
    return _key(last) in TREE_MODELS | EXTERNAL


def convert(estimator: Any, n_features: int) -> bytes:
    """The estimator as a serialized ONNX model taking one ``(rows, n_features)`` float32 tensor.

    Raises:
        NativeUnavailableError: the libraries are missing, or the conversion failed (and why).
    """
    if not convertible(estimator):
        raise NativeUnavailableError(f"no native conversion for {type(estimator).__name__}")
    try:
        from skl2onnx import to_onnx
    except ImportError as e:
        raise NativeUnavailableError(f"skl2onnx is not installed ({e})") from e
    _register_external_converters()
    last = estimator.steps[-1][1] if is_pipeline(estimator) else estimator
    options = {id(last): {"zipmap": False}} if hasattr(last, "classes_") else None
    sample = np.zeros((1, n_features), dtype=np.float32)
    try:
        model = to_onnx(estimator, sample, options=options, target_opset=OPSET)
    except Exception as e:  # skl2onnx raises many kinds; any of them means "not this model"
        raise NativeUnavailableError(
            f"skl2onnx could not convert it ({type(e).__name__}: {e})"
        ) from e
    return bytes(model.SerializeToString())


@functools.cache
def _register_external_converters() -> None:
    """Teach skl2onnx XGBoost's and LightGBM's estimators (once; only those installed)."""
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes as classifier_shapes,
    )
    from skl2onnx.common.shape_calculator import (
        calculate_linear_regressor_output_shapes as regressor_shapes,
    )

    options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    try:
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
        from xgboost import XGBClassifier, XGBRegressor
    except ImportError:
        pass
    else:
        update_registered_converter(
            XGBClassifier,
            "XGBoostXGBClassifier",
            classifier_shapes,
            convert_xgboost,
            options=options,
        )
        update_registered_converter(
            XGBRegressor, "XGBoostXGBRegressor", regressor_shapes, convert_xgboost
        )
    try:
        from lightgbm import LGBMClassifier, LGBMRegressor
        from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
    except ImportError:
        pass
    else:
        update_registered_converter(
            LGBMClassifier,
            "LightGbmLGBMClassifier",
            classifier_shapes,
            convert_lightgbm,
            options=options,
        )
        update_registered_converter(
            LGBMRegressor,
            "LightGbmLGBMRegressor",
            regressor_shapes,
            convert_lightgbm,
            options={"split": None},
        )


NATIVE_FILE = "model.onnx"
"""The native model's file name in a bundle."""


def converter_version() -> str:
    """The converting library and its version, as a bundle records it."""
    import skl2onnx

    return f"skl2onnx {skl2onnx.__version__}"


def runtime_version() -> str | None:
    """ONNX Runtime's version, or None when it is not installed."""
    try:
        import onnxruntime
    except ImportError:
        return None
    return str(onnxruntime.__version__)


class OnnxEngine(CompiledEngine):
    """The estimator's ONNX model in an ONNX Runtime session (float32 in, as the trees compare).

    Pickles as the model's bytes: a uvicorn worker opens its own session.
    """

    def __init__(self, estimator: Any, model: bytes, *, threads: int = 1) -> None:
        version = runtime_version()
        if version is None:
            raise NativeUnavailableError("onnxruntime is not installed")
        super().__init__(estimator, f"ONNX Runtime {version} ({_describe(estimator)})")
        self.model = model
        self.threads = threads
        self._open()

    def _open(self) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        try:
            self.session = onnxruntime.InferenceSession(
                self.model, options, providers=["CPUExecutionProvider"]
            )
        except Exception as e:  # a corrupt or unsupported model: say so, do not serve it
            raise NativeUnavailableError(
                f"ONNX Runtime refused the model ({type(e).__name__})"
            ) from e
        self.input = self.session.get_inputs()[0].name
        outputs = [o.name for o in self.session.get_outputs()]
        # classifiers: [label, probabilities]; regressors: [variable]
        self.output_name = outputs[1] if self.classes.size and len(outputs) > 1 else outputs[0]

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["session"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._open()

    def _run(self, x: np.ndarray) -> np.ndarray:
        feed = {self.input: np.ascontiguousarray(x, dtype=np.float32)}
        return np.asarray(self.session.run([self.output_name], feed)[0], dtype=np.float64)

    def _values(self, x: np.ndarray) -> np.ndarray:
        values = self._run(x)
        return values[:, 0] if values.ndim == 2 and values.shape[1] == 1 else values

    def _proba(self, x: np.ndarray) -> np.ndarray:
        proba = self._run(x)
        proba /= proba.sum(axis=1, keepdims=True)  # float32 sums miss 1 by ~1e-7; rows sum to 1
        return proba


def _describe(estimator: Any) -> str:
    if is_pipeline(estimator):
        return "Pipeline(" + " > ".join(type(s).__name__ for _, s in estimator.steps) + ")"
    return type(estimator).__name__
