"""Which engine serves a loaded model, verified on probe rows; and the native engine's upgrade.

At load: scikit-learn, or the compiled fast path when it matches scikit-learn. A model the native
engine takes (``predictor.inference.native``) then goes native in one of two ways:

- a bundle carries its ONNX model (converted at ``publish``, named with its digest in
  ``model.json``): it is verified on the probe rows and the bundle's e2e rows (within their
  ``atol``) at load, and serves from the first request;
- a bare pickle serves at once on the engine above, and ``NativeUpgrade`` converts and verifies
  it in the background once the model is ready, then switches the ``EngineSlot``.

Either way a native model that differs from scikit-learn never serves, and the reason says why.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from predictor.inference.engines import Engine, EngineSlot, SklearnEngine
from predictor.inference.fastpath import choose_engine, choose_native, probe_rows
from predictor.inference.native import OnnxEngine, convertible
from predictor.inference.signature import Signature
from predictor.sections import Engines

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BundleChecks:
    """What a bundle's acceptance sets add to the choice of engine."""

    rows: Sequence[list[float]] = ()
    """Their rows (feature values in order), probed beside synthetic ones."""
    e2e: Callable[[Engine], str | None] | None = field(default=None)
    """Answers the bundle's e2e rows with an engine: None when they come back as recorded
    (within their tolerance), else a summary of the misses."""


@dataclass(frozen=True)
class NativeUpgrade:
    """Convert the estimator for the native engine and verify it, off the request path."""

    estimator: Any
    probes: Any
    is_classifier: bool
    threads: int
    serving_reason: str
    """Why the engine that serves until the switch was chosen."""

    def attempt(self, *, origin: str) -> tuple[OnnxEngine | None, str]:
        """The estimator converted and verified for the native engine, or None and why."""
        return choose_native(
            self.estimator,
            None,
            self.probes,
            is_classifier=self.is_classifier,
            threads=self.threads,
            origin=origin,
        )

    def run(self, slot: EngineSlot) -> bool:
        """Convert, verify and switch ``slot`` to the native engine; False (and why) if not.

        Nothing to do when the slot has switched already (a uvicorn worker's copy of a model
        whose conversion finished before the worker started).
        """
        if slot.switched:
            return False
        engine, reason = self.attempt(origin="converted in the background")
        if engine is None:
            slot.reason = f"{self.serving_reason}; native engine: {reason}"
            logger.warning("native engine not used: %s", reason)
            return False
        slot.switch(engine, reason)
        logger.info("engine: switched to %s", reason)
        return True


def select_engine(
    estimator: Any,
    signature: Signature,
    engines: Engines,
    checks: BundleChecks | None = None,
    *,
    native_model: bytes | None = None,
) -> tuple[EngineSlot, NativeUpgrade | None]:
    """The engine to serve with from the first request, and the upgrade to run later (if any).

    ``native_model`` is a bundle's ONNX model, its digest already checked.
    """
    if not signature.all_numeric or signature.n_features is None:
        reason = "scikit-learn (the fast path takes numeric features only)"
        return EngineSlot(SklearnEngine(estimator), reason), None
    if signature.task == "classification" and signature.classes is None:
        reason = "scikit-learn (the fast path takes classifiers of one output only)"
        return EngineSlot(SklearnEngine(estimator), reason), None
    checks = checks if checks is not None else BundleChecks()
    probes = _probes(estimator, signature, checks)
    is_classifier = signature.task == "classification"
    wants_native = engines.fast_path and engines.native_engine and convertible(estimator)
    why = None
    if wants_native and native_model is not None:
        native, why = _bundle_native(
            estimator, native_model, probes, signature, checks, engines.native_threads
        )
        if native is not None:  # the compiled engine, a fallback only, need not be built
            return EngineSlot(native, why), None
        logger.warning("the bundle's native model is not used: %s", why)
    engine, reason = choose_engine(
        estimator, probes, enabled=engines.fast_path, is_classifier=is_classifier
    )
    if not wants_native:
        return EngineSlot(engine, reason), None
    if why is not None:
        return EngineSlot(engine, f"{reason}; native engine: {why}"), None
    upgrade = NativeUpgrade(estimator, probes, is_classifier, engines.native_threads, reason)
    return EngineSlot(engine, f"{reason}; native engine: converting in the background"), upgrade


def _bundle_native(
    estimator: Any,
    model: bytes,
    probes: Any,
    signature: Signature,
    checks: BundleChecks,
    threads: int,
) -> tuple[OnnxEngine | None, str]:
    """A bundle's native model, verified on the probe rows and the bundle's e2e rows; or why not."""
    native, why = choose_native(
        estimator,
        model,
        probes,
        is_classifier=signature.task == "classification",
        threads=threads,
        origin="from the bundle",
    )
    if native is not None and checks.e2e is not None:
        missed = checks.e2e(native)
        if missed is not None:  # its float32 sums miss the deployer's own tolerance
            return None, f"{native.name} misses the bundle's e2e rows ({missed})"
    return native, why


def _probes(estimator: Any, signature: Signature, checks: BundleChecks) -> Any:
    """Probe rows: the bundle's rows and synthetic ones (a frame when names are known)."""
    probes: Any = probe_rows(estimator, signature.n_features or 0, list(checks.rows))
    if signature.feature_names is not None:
        import pandas as pd

        probes = pd.DataFrame(probes, columns=list(signature.feature_names))
    return probes
