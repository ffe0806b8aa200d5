"""Model files that cannot run code: skops bundles, bare skops files, and ``--allow_pickle false``.

Each model is served by a real ``python -m predictor`` process; what is refused is refused at
start-up with one line (``predictor: ...``) and the documented exit code.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import joblib
import numpy as np
import pytest
import skops.io
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from predictor.bundle.manifest import trust_digest
from predictor.stores.files import sha256_file
from tests.helpers import RunningServer, ServerFactory, run_publish

pytestmark = pytest.mark.timeout(180)

X = np.random.default_rng(3).normal(size=(120, 3))
Y = (X[:, 0] + X[:, 2] > 0).astype(int)
NO_PICKLES = ["--allow_pickle", "false"]


def said(refused: RunningServer) -> str:
    """The one line the process ends with on stderr."""
    lines = [line for line in refused.log().splitlines() if line.startswith("predictor: ")]
    assert len(lines) == 1, refused.log()
    assert "Traceback" not in refused.log()
    return lines[0]


def predictions(running: RunningServer, name: str) -> list[int]:
    reply = httpx.post(
        f"{running.url}/v1/models/{name}:predict", json={"instances": X[:6].tolist()}, timeout=10
    )
    assert reply.status_code == 200, reply.text
    return list(reply.json()["predictions"])


@pytest.fixture(scope="module")
def pickled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, LogisticRegression]:
    model = LogisticRegression().fit(X, Y)
    path = tmp_path_factory.mktemp("pickled") / "model.joblib"
    joblib.dump(model, path)
    return path, model


@pytest.fixture(scope="module")
def skops_bundle(
    tmp_path_factory: pytest.TempPathFactory, pickled: tuple[Path, LogisticRegression]
) -> Path:
    work = tmp_path_factory.mktemp("skops-bundle")
    (work / "e2e.json").write_text(json.dumps({"instances": X[:10].tolist()}))
    published = run_publish(
        "--model", str(pickled[0]), "--name", "lr", "--version", "1.0.0",
        "--to", str(work / "registry"), "--format", "skops", "--e2e", str(work / "e2e.json"),
    )  # fmt: skip
    assert published.returncode == 0, published.stderr
    return Path(published.stdout.strip())


def test_a_skops_bundle_serves_with_pickles_refused_and_its_digest_pinned(
    server: ServerFactory, skops_bundle: Path, pickled: tuple[Path, LogisticRegression]
) -> None:
    manifest = json.loads((skops_bundle / "model.json").read_text())
    artifact = manifest["artifact"]
    assert artifact["path"] == "model.skops"
    assert sorted(p.name for p in skops_bundle.iterdir() if p.is_file()) == [
        "model.json",
        "model.skops",
    ]
    assert "sklearn.linear_model._logistic.LogisticRegression" in artifact["trusted_types"]
    digest = trust_digest(sha256_file(skops_bundle / "model.skops"), artifact["trusted_types"])

    running = server.start(
        str(skops_bundle), name="lr", args=[*NO_PICKLES, "--model_sha256", digest]
    )
    assert predictions(running, "lr") == pickled[1].predict(X[:6]).tolist()
    metadata = httpx.get(f"{running.url}/v2/models/lr").json()
    assert metadata["parameters"]["sha256"] == digest


def test_the_trust_list_is_covered_by_the_digest(
    server: ServerFactory, skops_bundle: Path, tmp_path: Path
) -> None:
    pinned = json.loads((skops_bundle / "model.json").read_text())["artifact"]
    digest = trust_digest(pinned["sha256"], pinned["trusted_types"])
    widened = tmp_path / "widened"
    shutil.copytree(skops_bundle, widened)
    document = json.loads((skops_bundle / "model.json").read_text())
    document["artifact"]["trusted_types"].append("builtins.eval")
    (widened / "model.json").write_text(json.dumps(document))

    refused = server.run_to_exit(
        str(widened), name="lr", args=[*NO_PICKLES, "--model_sha256", digest]
    )
    assert refused.process.returncode == 1
    assert "but the deployer pinned" in said(refused)

    document["artifact"]["trusted_types"] = [
        t for t in pinned["trusted_types"] if not t.endswith("LogisticRegression")
    ]
    (widened / "model.json").write_text(json.dumps(document))
    narrowed = server.run_to_exit(str(widened), name="lr", args=NO_PICKLES)
    assert narrowed.process.returncode == 2
    assert (
        "model.skops holds 1 type(s) its manifest does not trust, first "
        "sklearn.linear_model._logistic.LogisticRegression" in said(narrowed)
    )


def test_pickles_are_refused_with_how_to_convert(
    server: ServerFactory, pickled: tuple[Path, LogisticRegression]
) -> None:
    refused = server.run_to_exit(str(pickled[0]), name="lr", args=NO_PICKLES)
    assert refused.process.returncode == 1
    assert said(refused) == (
        "predictor: cannot serve model 'lr': model.joblib is a pickle, and allow_pickle is "
        "false: loading a pickle runs code. Convert it with "
        "`python -m predictor publish --format skops`"
    )


def double(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=float) * 2.0


def test_a_bare_skops_file_holding_another_type_is_refused_naming_it(
    server: ServerFactory, tmp_path: Path
) -> None:
    model = make_pipeline(FunctionTransformer(double), LogisticRegression()).fit(X, Y)
    path = tmp_path / "custom.skops"
    skops.io.dump(model, path)
    refused = server.run_to_exit(str(path), name="custom")
    assert refused.process.returncode == 2
    assert said(refused) == (
        "predictor: cannot serve model 'custom': custom.skops holds 1 type(s) outside "
        "scikit-learn's, first tests.integration.test_skops.double; publish it as a bundle "
        "(publish --format skops) to trust them by name"
    )


def test_a_bundle_that_ships_code_is_refused_without_pickles(
    server: ServerFactory, tmp_path: Path
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "skops_custom.py").write_text(
        "import numpy as np\n\ndef doubled(x):\n    return np.asarray(x, dtype=float) * 2.0\n"
    )
    script = (
        "import sys, joblib, numpy as np\n"
        f"sys.path.insert(0, {str(source)!r})\n"
        "import skops_custom\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "from sklearn.pipeline import make_pipeline\n"
        "from sklearn.preprocessing import FunctionTransformer\n"
        "x = np.random.default_rng(1).normal(size=(60, 3)); y = (x[:, 0] > 0).astype(int)\n"
        "m = make_pipeline(FunctionTransformer(skops_custom.doubled), LogisticRegression())\n"
        f"joblib.dump(m.fit(x, y), {str(tmp_path / 'model.joblib')!r})\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    published = run_publish(
        "--model", str(tmp_path / "model.joblib"), "--name", "custom", "--version", "1.0.0",
        "--to", str(tmp_path / "registry"), "--format", "skops",
        "--code", str(source / "skops_custom.py"),
    )  # fmt: skip
    assert published.returncode == 0, published.stderr
    bundle = published.stdout.strip()
    trusted = json.loads((Path(bundle) / "model.json").read_text())["artifact"]["trusted_types"]
    assert "skops_custom.doubled" in trusted

    served = server.start(bundle, name="custom")  # pickles allowed: the code is trusted by name
    assert len(predictions(served, "custom")) == 6
    served.stop()
    refused = server.run_to_exit(bundle, name="custom", args=NO_PICKLES)
    assert refused.process.returncode == 1
    assert "ships Python modules (code/), and allow_pickle is false" in said(refused)


def test_a_skops_forest_whose_tree_points_outside_itself_is_refused_at_load(
    server: ServerFactory, tmp_path: Path
) -> None:
    from sklearn.ensemble import RandomForestClassifier

    forest = RandomForestClassifier(n_estimators=3, max_depth=3, random_state=0).fit(X, Y)
    tree = forest.estimators_[1].tree_
    state = tree.__getstate__()
    state["nodes"]["left_child"][0] = 10**6  # predict would read far outside the node array
    tree.__setstate__(state)
    path = tmp_path / "forest.skops"
    skops.io.dump(forest, path)

    refused = server.run_to_exit(str(path), name="forest", args=NO_PICKLES)
    assert refused.process.returncode == 2
    assert said(refused) == (
        "predictor: cannot serve model 'forest': forest.skops: a Tree has a left child index "
        f"outside its {tree.node_count} nodes; refused"
    )
