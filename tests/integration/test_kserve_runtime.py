"""The predictor as KServe runs it from the shipped ServingRuntime, on what the storage
initializer leaves in the model folder.

The command line is the runtime's own ``args`` (rendered with ``kubectl kustomize``), with
``{{.Name}}`` filled in as KServe fills it, ``/mnt/models`` pointing at a folder laid out as
KServe's storage initializer lays it out, and the two port numbers swapped for free ones.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import grpc
import httpx
import pytest
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

from predictor.publishing.publish import BundleSpec, publish
from predictor.stores.files import sha256_file
from tests.helpers import ServerFactory, infer_request
from tests.unit.test_manifests import render, runtime_args

ROW = [1.0, 200.0, 2.0]


def kserve_argv(name: str, model_dir: Path) -> list[str]:
    argv = []
    for arg in runtime_args():
        arg = arg.replace("{{.Name}}", name).replace("=/mnt/models", f"={model_dir}")
        arg = arg.replace("--http_port=8080", "--http_port={http_port}")
        argv.append(arg.replace("--grpc_port=8081", "--grpc_port={grpc_port}"))
    return argv


@pytest.fixture
def layouts(tmp_path: Path, demo_model_dir: Path) -> dict[str, Path]:
    """/mnt/models as the storage initializer leaves it for three kinds of storageUri."""
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(demo_model_dir / "model.joblib", bare / "model.joblib")
    registry = Path(
        publish(BundleSpec(demo_model_dir / "model.joblib", "taxi", "1.0.0"), str(tmp_path / "r"))
    )
    bundle = tmp_path / "bundle"
    shutil.copytree(registry, bundle)
    prefix = tmp_path / "prefix"
    shutil.copytree(registry, prefix / "taxi" / "1.0.0")
    return {"bare": bare, "bundle": bundle, "registry-prefix": prefix}


@pytest.mark.parametrize("layout", ["bare", "bundle", "registry-prefix"])
def test_the_runtime_args_serve_what_the_storage_initializer_left(
    server: ServerFactory, layouts: dict[str, Path], layout: str
) -> None:
    running = server.start(None, argv=kserve_argv("taxi", layouts[layout]), timeout=60)
    v1 = httpx.post(f"{running.url}/v1/models/taxi:predict", json={"instances": [ROW]})
    assert v1.status_code == 200, v1.text
    expected_version = (
        "1.0.0" if layout != "bare" else sha256_file(layouts["bare"] / "model.joblib")[:12]
    )
    assert v1.json()["model_version"] == expected_version
    v2 = httpx.post(
        f"{running.url}/v2/models/taxi/infer",
        json={"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": ROW}]},
    )
    assert v2.status_code == 200, v2.text
    assert v2.json()["outputs"][0]["data"] == v1.json()["predictions"]
    with grpc.insecure_channel(running.grpc_target) as channel:
        reply = GRPCInferenceServiceStub(channel).ModelInfer(
            infer_request("taxi", [ROW]), timeout=30
        )
    assert [b.decode() for b in reply.outputs[0].contents.bytes_contents] == v1.json()[
        "predictions"
    ]
    assert reply.model_version == expected_version


def test_the_digest_pin_is_checked_on_the_local_copy(
    server: ServerFactory, layouts: dict[str, Path]
) -> None:
    refused = server.run_to_exit(
        None, argv=kserve_argv("taxi", layouts["bare"]), env={"PREDICTOR_MODEL_SHA256": "b" * 64}
    )
    assert refused.process.returncode == 1
    assert f"but the deployer pinned {'b' * 64}; refusing to unpickle it" in refused.log()


def test_the_multi_model_runtime_serves_what_the_model_agent_downloads(
    server: ServerFactory, tmp_path: Path, demo_model_dir: Path
) -> None:
    """The gke-multi-model overlay's runtime (args and env as rendered), fed as KServe's agent
    feeds it: each TrainedModel's storageUri downloaded into /mnt/models/<name>, then a load."""
    rendered = render("manifests/overlays/gke-multi-model")
    (runtime,) = [d for d in rendered if d["kind"] == "ServingRuntime"]
    (container,) = runtime["spec"]["containers"]
    mount = tmp_path / "mnt" / "models"
    mount.mkdir(parents=True)
    argv = [
        a.replace("=/mnt/models", f"={mount}")
        .replace("--http_port=8080", "--http_port={http_port}")
        .replace("--grpc_port=8081", "--grpc_port={grpc_port}")
        for a in container["args"]
    ]
    environment = {e["name"]: e["value"] for e in container["env"]}
    running = server.start(None, argv=argv, env=environment, timeout=60)
    trained = [d["metadata"]["name"] for d in rendered if d["kind"] == "TrainedModel"]
    assert trained == ["taxi-eu", "taxi-us"]
    for name in trained:
        bundle = publish(
            BundleSpec(demo_model_dir / "model.joblib", name, "1.0.0"), str(tmp_path / "r")
        )
        shutil.copytree(bundle, mount / name)  # the agent's download of storageUri
        loaded = httpx.post(f"{running.url}/v2/repository/models/{name}/load", timeout=60)
        assert loaded.status_code == 200, loaded.text
    for name in trained:
        v1 = httpx.post(f"{running.url}/v1/models/{name}:predict", json={"instances": [ROW]})
        assert v1.status_code == 200, v1.text
        assert v1.json()["model_version"] == "1.0.0"
    listed = httpx.post(f"{running.url}/v2/repository/index", timeout=10).json()
    assert [(m["name"], m["state"], m["version"]) for m in listed] == [
        ("taxi-eu", "READY", "1.0.0"),
        ("taxi-us", "READY", "1.0.0"),
    ]
