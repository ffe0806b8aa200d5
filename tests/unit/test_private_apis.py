"""Contracts on the private names the project reaches into, one library at a time.

Each reach lives in one module: KServe's server internals in ``predictor.server.model_server``
and ``predictor.server.grpc_server`` (the KServe adapter), prometheus_client's metric children in
``predictor.metrics.handles``, scikit-learn's gradient-boosting prior in
``predictor.inference.trees`` and its column transformer's input indices in
``predictor.inference.schema``, google-cloud-storage's client credentials in
``predictor.stores.gcs``. When an upgrade moves one of them, these tests fail first, naming
the library, its version and the name that moved.
"""

from __future__ import annotations

import inspect
from importlib.metadata import version
from typing import Any

import numpy as np


def require(owner: Any, names: tuple[str, ...], library: str) -> None:
    missing = [n for n in names if not hasattr(owner, n)]
    assert not missing, (
        f"{library} {version(library)} no longer has {', '.join(missing)} on "
        f"{getattr(owner, '__name__', type(owner).__name__)}; the adapter that uses it must change"
    )


def test_kserve_server_internals() -> None:
    from kserve import ModelServer
    from kserve.protocol.grpc.server import GRPCServer
    from kserve.protocol.rest import server as rest_server
    from kserve.protocol.rest.multiprocess.server import RESTServerMultiProcess

    require(rest_server, ("_RefreshingServer", "RESTServer"), "kserve")
    require(
        rest_server.RESTServer,
        (
            "_register_endpoints",
            "_add_exception_handlers",
            "_add_middlewares",
            "create_application",
        ),
        "kserve",
    )
    require(
        ModelServer,
        (
            "_register_and_check_atleast_one_model_is_ready",
            "setup_event_loop",
            "register_signal_handler",
        ),
        "kserve",
    )
    server = ModelServer(enable_grpc=False)
    require(
        server,
        ("_grpc_server", "_rest_server", "_rest_multiprocess_server", "servers", "dataplane"),
        "kserve",
    )
    grpc_init = inspect.signature(GRPCServer.__init__).parameters
    assert {"port", "data_plane", "model_repository_extension", "kwargs", "grace_period"} <= set(
        grpc_init
    ), f"kserve {version('kserve')}: GRPCServer.__init__ takes {list(grpc_init)}"
    source = inspect.getsource(RESTServerMultiProcess)
    assert "self._rest_server" in source, (
        f"kserve {version('kserve')}: RESTServerMultiProcess no longer runs self._rest_server"
    )
    grpc_source = inspect.getsource(GRPCServer.__init__)
    for attribute in ("self._data_plane", "self._port", "self._kwargs", "self._grace_period"):
        assert attribute in grpc_source, f"kserve {version('kserve')}: GRPCServer lost {attribute}"


def test_prometheus_client_metric_children() -> None:
    from prometheus_client import CollectorRegistry, Counter, Histogram

    registry = CollectorRegistry()
    counter = Counter("c", "c", ["a"], registry=registry).labels("x")
    histogram = Histogram("h", "h", ["a"], registry=registry).labels("x")
    require(counter, ("_value",), "prometheus-client")
    require(histogram, ("_upper_bounds", "_buckets", "_sum"), "prometheus-client")
    require(counter._value, ("inc", "get"), "prometheus-client")


def test_sklearn_gradient_boosting_prior() -> None:
    from sklearn.ensemble import GradientBoostingClassifier

    x = np.random.default_rng(0).normal(size=(40, 3))
    model = GradientBoostingClassifier(n_estimators=2).fit(x, x[:, 0] > 0)
    require(model, ("_raw_predict_init", "estimators_"), "scikit-learn")
    assert np.asarray(model._raw_predict_init(x[:1])).shape == (1, 1)


def test_google_cloud_storage_client_credentials() -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client.create_anonymous_client()
    require(client, ("_credentials",), "google-cloud-storage")
    assert isinstance(client._credentials, AnonymousCredentials)


def test_sklearn_column_transformer_input_indices() -> None:
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame = pd.DataFrame({"a": ["x", "y"], "b": [1.0, 2.0]})
    fitted = ColumnTransformer([("cat", OneHotEncoder(), ["a"]), ("num", StandardScaler(), ["b"])])
    fitted.fit(frame)
    require(fitted, ("_transformer_to_input_indices",), "scikit-learn")
    indices = {k: [int(i) for i in v] for k, v in fitted._transformer_to_input_indices.items()}
    assert indices["cat"] == [0] and indices["num"] == [1], (
        f"scikit-learn {version('scikit-learn')}: _transformer_to_input_indices is {indices}"
    )
