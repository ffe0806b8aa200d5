"""The native engine in a running server: a bundle serves natively at once, a bare pickle switches
over in the background, and a native model that is not the pickle's never answers."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import grpc
import httpx
import joblib
import numpy as np
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub
from sklearn.ensemble import RandomForestClassifier

from predictor.inference.native import convert
from predictor.publishing.publish import BundleSpec, publish
from tests.helpers import RunningServer, ServerFactory

pytestmark = pytest.mark.timeout(120)

RNG = np.random.default_rng(11)
X = RNG.normal(size=(1000, 8))
Y = (X[:, 0] - X[:, 3] + RNG.normal(scale=0.3, size=1000) > 0).astype(int)
ROWS = RNG.normal(size=(64, 8))


@pytest.fixture(scope="module")
def forest(tmp_path_factory: pytest.TempPathFactory) -> tuple[RandomForestClassifier, Path]:
    model = RandomForestClassifier(n_estimators=40, max_depth=10, random_state=0).fit(X, Y)
    path = tmp_path_factory.mktemp("forest") / "model.joblib"
    joblib.dump(model, path)
    return model, path


def published(model_file: Path, tmp_path: Path) -> str:
    """The forest published as a bundle (with its native model); the folder to serve."""
    spec = BundleSpec(model_file=model_file, name="forest", version="1.0.0", created_by="tests")
    return publish(spec, str(tmp_path / "registry"))


def another_models_onnx() -> bytes:
    """The ONNX model of another forest, trained on the opposite labels."""
    return convert(RandomForestClassifier(n_estimators=5, random_state=1).fit(X, 1 - Y), 8)


def engine_of(server: RunningServer) -> str:
    return str(httpx.get(f"{server.url}/v2/models/forest").json()["parameters"]["engine"])


def info_engines(server: RunningServer) -> dict[str, float]:
    """``predictor_model_info`` by its engine label."""
    found = {}
    for line in httpx.get(f"{server.url}/metrics").text.splitlines():
        if line.startswith("predictor_model_info{"):
            engine = line.split('engine="', 1)[1].split('"', 1)[0]
            found[engine] = float(line.rsplit(" ", 1)[1])
    return found


def v2_proba(server: RunningServer) -> np.ndarray:
    body = {
        "inputs": [
            {
                "name": "input-0",
                "shape": list(ROWS.shape),
                "datatype": "FP64",
                "data": ROWS.ravel().tolist(),
            }
        ],
        "outputs": [{"name": "predict_proba"}],
    }
    response = httpx.post(f"{server.url}/v2/models/forest/infer", json=body)
    assert response.status_code == 200, response.text
    output = response.json()["outputs"][0]
    return np.asarray(output["data"]).reshape(output["shape"])


def grpc_labels(server: RunningServer) -> np.ndarray:
    request = pb.ModelInferRequest(model_name="forest")
    tensor = request.inputs.add(name="input-0", datatype="FP64", shape=list(ROWS.shape))
    tensor.contents.fp64_contents.extend(ROWS.ravel().tolist())
    request.outputs.add(name="predict")
    with grpc.insecure_channel(server.grpc_target) as channel:
        reply = GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=10)
    return np.asarray(reply.outputs[0].contents.int64_contents)


def test_a_published_forest_answers_natively_from_the_first_request(
    server: ServerFactory, forest: tuple[RandomForestClassifier, Path], tmp_path: Path
) -> None:
    model, path = forest
    uri = published(path, tmp_path)
    manifest = json.loads((Path(uri) / "model.json").read_text())
    onnx = (Path(uri) / "model.onnx").read_bytes()
    assert manifest["native"]["sha256"] == hashlib.sha256(onnx).hexdigest()
    assert manifest["native"]["converter"].startswith("skl2onnx ")
    running = server.start(uri, name="forest")
    assert engine_of(running).startswith("ONNX Runtime ")
    assert "from the bundle" in engine_of(running)
    np.testing.assert_allclose(v2_proba(running), model.predict_proba(ROWS), rtol=0, atol=1e-5)
    np.testing.assert_array_equal(grpc_labels(running), model.predict(ROWS))
    (engine,) = [e for e, v in info_engines(running).items() if v == 1]
    assert engine.startswith("ONNX Runtime ")


def test_a_bare_pickle_serves_at_once_then_switches_to_the_native_engine(
    server: ServerFactory, forest: tuple[RandomForestClassifier, Path]
) -> None:
    model, path = forest
    running = server.start(str(path), name="forest")
    first = v2_proba(running)  # answered by whichever engine serves now
    np.testing.assert_allclose(first, model.predict_proba(ROWS), rtol=0, atol=1e-5)
    deadline = time.monotonic() + 60
    while not engine_of(running).startswith("ONNX Runtime ") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "converted in the background, verified against scikit-learn" in engine_of(running)
    np.testing.assert_allclose(v2_proba(running), model.predict_proba(ROWS), rtol=0, atol=1e-5)
    np.testing.assert_array_equal(grpc_labels(running), model.predict(ROWS))
    engines = info_engines(running)
    assert {e for e, v in engines.items() if v == 1} == {engine_of(running).split(",")[0]}
    assert [e for e, v in engines.items() if v == 0] == [
        "compiled RandomForestClassifier (40 trees)"
    ]


def test_the_native_engine_can_be_switched_off(
    server: ServerFactory, forest: tuple[RandomForestClassifier, Path]
) -> None:
    _, path = forest
    running = server.start(str(path), name="forest", env={"PREDICTOR_NATIVE_ENGINE": "false"})
    assert engine_of(running).startswith("compiled RandomForestClassifier")
    assert "native" not in engine_of(running)


def test_a_bundle_whose_native_model_was_changed_is_refused(
    server: ServerFactory, forest: tuple[RandomForestClassifier, Path], tmp_path: Path
) -> None:
    _, path = forest
    uri = published(path, tmp_path)
    (Path(uri) / "model.onnx").write_bytes(another_models_onnx())
    refused = server.run_to_exit(uri, name="forest")
    assert refused.process.returncode == 1
    assert "native model model.onnx: sha256 is" in refused.log()


def test_a_native_model_that_is_not_the_pickles_serves_nothing(
    server: ServerFactory, forest: tuple[RandomForestClassifier, Path], tmp_path: Path
) -> None:
    """Even with its digest recorded, another model's ONNX never answers: the pickle's engine does."""
    model, path = forest
    uri = published(path, tmp_path)
    onnx = another_models_onnx()
    (Path(uri) / "model.onnx").write_bytes(onnx)
    manifest_path = Path(uri) / "model.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["native"]["sha256"] = hashlib.sha256(onnx).hexdigest()
    manifest_path.write_text(json.dumps(manifest))
    running = server.start(uri, name="forest")
    engine = engine_of(running)
    assert engine.startswith("compiled RandomForestClassifier")
    assert "native engine: ONNX Runtime" in engine and "differs from scikit-learn" in engine
    np.testing.assert_array_equal(grpc_labels(running), model.predict(ROWS))
