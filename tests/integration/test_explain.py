"""``:explain`` on real predictor processes: reasons per prediction, checked against shap itself.

For a forest, a boosted pipeline over a frame with a string column, a linear model and a
non-tree model (from a bundle, whose rows are the background): additivity for every row,
equality with shap's values computed here (exact methods), one-hot columns summed back to their
source column, and every bad input refused as ``:predict`` refuses it. Then the bounds (rows,
concurrency) and a server without shap.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import warnings
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import make_column_transformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from tests.helpers import RunningServer, ServerFactory, run_publish, wait_until

# Explanations run in worker processes at the lowest CPU priority: beside a busy neighbour (the
# other test worker) they get what is left of the machine, so they are given time.
pytestmark = pytest.mark.timeout(300)

RNG = np.random.default_rng(3)
X = RNG.normal(size=(300, 4))
NAMES = ["a", "b", "c", "d"]
FRAME = pd.DataFrame(X, columns=NAMES)
Y3 = np.digitize(X[:, 0] + X[:, 1], [-0.5, 0.5])
Y2 = (X[:, 0] - X[:, 2] > 0).astype(int)
CITY = pd.DataFrame(
    {"city": RNG.choice(["paris", "lyon", "nice"], 300), "rooms": RNG.integers(1, 6, 300) * 1.0}
)
CITY_Y = ((CITY["city"] == "paris") ^ (CITY["rooms"] > 3)).astype(int)


def shap_module() -> Any:
    """shap, imported as the server imports it: its plotting half warns about matplotlib."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        import shap

        return shap


def explain(server: RunningServer, body: dict[str, Any], name: str = "m") -> httpx.Response:
    return httpx.post(f"{server.url}/v1/models/{name}:explain", json=body, timeout=60)


def served(server: ServerFactory, tmp_path: Path, model: Any, **kwargs: Any) -> RunningServer:
    path = tmp_path / "model.joblib"
    joblib.dump(model, path)
    return server.start(str(path), name="m", timeout=60, **kwargs)


def additive(answer: dict[str, Any]) -> None:
    for row in answer["explanations"]:
        for entry in row.get("by_class", [row]):
            total = entry["base_value"] + sum(entry["contributions"].values())
            assert abs(total - entry["value"]) <= 1e-6, entry


def test_a_forest_is_explained_exactly_as_shap_explains_it(
    server: ServerFactory, tmp_path: Path
) -> None:
    forest = RandomForestClassifier(n_estimators=30, max_depth=6, random_state=0).fit(FRAME, Y3)
    running = served(server, tmp_path, forest)
    rows = FRAME.iloc[:5]
    answer = explain(running, {"instances": rows.to_dict("records")}).json()
    assert (answer["method"], answer["exact"]) == ("tree_shap", True)
    additive(answer)
    direct = np.asarray(shap_module().TreeExplainer(forest).shap_values(rows))  # [N, F, K]
    proba = forest.predict_proba(rows)
    for i, row in enumerate(answer["explanations"]):
        k = list(forest.classes_).index(forest.predict(rows.iloc[[i]])[0])
        assert row["output"] == "predict_proba" and row["class"] == int(forest.classes_[k])
        assert row["value"] == pytest.approx(proba[i, k], abs=1e-9)
        got = [row["contributions"][n] for n in NAMES]
        np.testing.assert_allclose(got, direct[i, :, k], atol=1e-6)
    every = explain(running, {"instances": [X[0].tolist()], "parameters": {"classes": "all"}})
    by_class = every.json()["explanations"][0]["by_class"]
    assert [e["class"] for e in by_class] == [0, 1, 2]
    additive(every.json())


def test_one_hot_columns_are_summed_back_to_their_source_column(
    server: ServerFactory, tmp_path: Path
) -> None:
    encode = make_column_transformer(
        (OneHotEncoder(handle_unknown="ignore", sparse_output=False), ["city"]),
        remainder="passthrough",
    )
    model = make_pipeline(encode, HistGradientBoostingClassifier(max_iter=30)).fit(CITY, CITY_Y)
    running = served(server, tmp_path, model)
    rows = CITY.iloc[:6]
    answer = explain(running, {"instances": rows.to_dict("records")}).json()
    assert (answer["method"], answer["exact"]) == ("tree_shap", True)
    additive(answer)
    columns = model[:-1].transform(rows)
    direct = np.asarray(
        shap_module().TreeExplainer(model[-1]).shap_values(columns)
    )  # [N, 4]: 3 + rooms
    for i, row in enumerate(answer["explanations"]):
        assert row["output"] == "decision_function" and row["class"] == 1
        assert row["value"] == pytest.approx(model.decision_function(rows.iloc[[i]])[0], abs=1e-9)
        assert row["contributions"]["city"] == pytest.approx(direct[i, :3].sum(), abs=1e-6)
        assert row["contributions"]["rooms"] == pytest.approx(direct[i, 3], abs=1e-6)


def test_a_linear_model_is_coefficient_times_value_with_no_background(
    server: ServerFactory, tmp_path: Path
) -> None:
    linear = LogisticRegression().fit(X, Y2)
    running = served(server, tmp_path, linear)
    answer = explain(running, {"instances": X[:4].tolist()}).json()
    assert (answer["method"], answer["exact"], answer["reference"]) == ("linear", True, "zero")
    additive(answer)
    for i, row in enumerate(answer["explanations"]):
        assert row["base_value"] == pytest.approx(linear.intercept_[0], abs=1e-9)
        expected = linear.coef_[0] * X[i]
        got = [row["contributions"][f"x{j}"] for j in range(4)]
        np.testing.assert_allclose(got, expected, atol=1e-9)
    metadata = httpx.get(f"{running.url}/v2/models/m").json()["parameters"]
    assert (metadata["explain"], metadata["explain_output"], metadata["explain_exact"]) == (
        "linear",
        "decision_function",
        "true",
    )


def knn_bundle(tmp_path: Path, rows: int) -> tuple[Any, Path]:
    """A KNN classifier (which only sampling explains), and its bundle whose end-to-end set's
    first ``rows`` rows are the background."""
    knn = KNeighborsClassifier().fit(FRAME, Y2)
    joblib.dump(knn, tmp_path / "model.joblib")
    golden = tmp_path / "golden.json"
    golden.write_text(
        json.dumps({"instances": X[:rows].tolist(), "expected": knn.predict(FRAME[:rows]).tolist()})
    )
    done = run_publish(
        "--model", str(tmp_path / "model.joblib"), "--name", "knn", "--version", "1.0.0",
        "--to", str(tmp_path / "registry"), "--e2e", str(golden),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return knn, tmp_path / "registry" / "knn" / "1.0.0"


def one_slow_worker(server: ServerFactory, tmp_path: Path) -> RunningServer:
    """A KNN bundle served with one explain worker and explanations that take seconds."""
    _, bundle_path = knn_bundle(tmp_path, 100)
    return server.start(
        str(bundle_path), name="m", timeout=60,
        env={"PREDICTOR_EXPLAIN_MAX_IN_FLIGHT": "1", "PREDICTOR_EXPLAIN_MAX_EVALS": "1000"},
    )  # fmt: skip


def test_a_non_tree_model_samples_over_its_bundles_rows_and_without_them_says_how(
    server: ServerFactory, tmp_path: Path
) -> None:
    knn, bundle_path = knn_bundle(tmp_path, 40)
    bare = server.start(str(tmp_path / "model.joblib"), name="m", timeout=60)
    refused = explain(bare, {"instances": [X[0].tolist()]})
    assert refused.status_code == 400
    assert "needs background rows: publish the model as a bundle" in refused.json()["error"]
    bundle = server.start(str(bundle_path), name="knn", timeout=60)
    body = {"instances": X[50:53].tolist()}
    first = explain(bundle, body, "knn").json()
    assert (first["method"], first["exact"]) == ("permutation_shap", False)
    additive(first)
    assert explain(bundle, body, "knn").json() == first  # seeded: the same rows, the same answer
    proba = knn.predict_proba(FRAME.iloc[50:53])
    for i, row in enumerate(first["explanations"]):
        k = list(knn.classes_).index(first["predictions"][i])
        assert row["value"] == pytest.approx(proba[i, k], abs=1e-9)


def test_bad_input_is_refused_as_predict_refuses_it(server: ServerFactory, tmp_path: Path) -> None:
    running = served(server, tmp_path, LogisticRegression().fit(X, Y2))
    bodies: list[dict[str, Any]] = [
        {"instances": [[1.0, 2.0]]},
        {"instances": [[1.0, "x", 2.0, 3.0]]},
        {"rows": []},
        {"instances": [X[0].tolist()], "parameters": {"classes": "some"}},
        {"instances": [X[0].tolist()], "parameters": {"output": "predict_proba"}},
    ]
    for body in bodies:
        predicted = httpx.post(f"{running.url}/v1/models/m:predict", json=body, timeout=30)
        explained = explain(running, body)
        assert explained.status_code == 400, explained.text
        if "parameters" not in body:
            assert explained.json() == predicted.json()
    too_many = explain(running, {"instances": X[:65].tolist()})
    assert too_many.status_code == 413
    assert too_many.json()["error"] == (
        "an explain request takes at most 64 rows (PREDICTOR_EXPLAIN_MAX_ROWS), got 65; "
        "send them in several requests"
    )
    assert httpx.post(f"{running.url}/v1/models/m:predict", json={"instances": X[:2].tolist()}).status_code == 200  # fmt: skip


def test_one_explanation_too_many_is_refused_at_once_while_predictions_go_on(
    server: ServerFactory, tmp_path: Path
) -> None:
    running = one_slow_worker(server, tmp_path)
    answers: list[httpx.Response] = []
    body = {"instances": X[:16].tolist()}
    both = [threading.Thread(target=lambda: answers.append(explain(running, body))) for _ in "ab"]
    for thread in both:
        thread.start()
    wait_until(lambda: answers, timeout=60, what="one of two explanations to be answered")
    predicted = httpx.post(
        f"{running.url}/v1/models/m:predict", json={"instances": [X[0].tolist()]}
    )
    for thread in both:
        thread.join(120)
    assert sorted(a.status_code for a in answers) == [200, 503]
    refused = next(a for a in answers if a.status_code == 503)
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["error"] == (
        "1 explanation(s) are running, the most this server runs at once; retry shortly"
    )
    assert predicted.status_code == 200


def test_without_shap_explain_says_which_extra_to_install(
    server: ServerFactory, tmp_path: Path
) -> None:
    hidden = tmp_path / "no-shap"
    hidden.mkdir()
    (hidden / "shap.py").write_text("raise ImportError('shap is not installed here')\n")
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, Y2)
    running = served(server, tmp_path, forest, env={"PYTHONPATH": str(hidden)})
    answer = explain(running, {"instances": [X[0].tolist()]})
    assert answer.status_code == 501
    assert "install the extra 'explain'" in answer.json()["error"]
    predicted = httpx.post(
        f"{running.url}/v1/models/m:predict", json={"instances": [X[0].tolist()]}
    )
    assert predicted.status_code == 200


def test_v2_and_grpc_carry_the_same_numbers_as_v1(server: ServerFactory, tmp_path: Path) -> None:
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

    forest = RandomForestClassifier(n_estimators=20, max_depth=5, random_state=1).fit(FRAME, Y3)
    running = served(server, tmp_path, forest)
    rows = X[:4]
    v1 = explain(running, {"instances": rows.tolist()}).json()
    want = np.asarray([[e["contributions"][n] for n in NAMES] for e in v1["explanations"]])
    base = [e["base_value"] for e in v1["explanations"]]
    asked = ["predict", "contributions", "base_value"]
    inputs = [{"name": n, "shape": [4], "datatype": "FP64", "data": rows[:, j].tolist()}
              for j, n in enumerate(NAMES)]  # fmt: skip
    v2 = httpx.post(
        f"{running.url}/v2/models/m/infer",
        json={"inputs": inputs, "outputs": [{"name": n} for n in asked]},
        timeout=60,
    )
    assert v2.status_code == 200, v2.text
    outputs = {t["name"]: t for t in v2.json()["outputs"]}
    assert [t["name"] for t in v2.json()["outputs"]] == asked
    contributions = outputs["contributions"]
    assert contributions["shape"] == [4, 4]
    assert json.loads(contributions["parameters"]["features"]) == NAMES
    assert json.loads(contributions["parameters"]["classes"]) == v1["predictions"]
    assert contributions["parameters"]["method"] == "tree_shap"
    np.testing.assert_allclose(np.reshape(contributions["data"], (4, 4)), want, atol=1e-12)
    np.testing.assert_allclose(outputs["base_value"]["data"], base, atol=1e-12)
    assert outputs["predict"]["data"] == v1["predictions"]

    message = pb.ModelInferRequest(
        model_name="m",
        inputs=[
            pb.ModelInferRequest.InferInputTensor(
                name=n, datatype="FP64", shape=[4],
                contents=pb.InferTensorContents(fp64_contents=rows[:, j].tolist()),
            )
            for j, n in enumerate(NAMES)
        ],
        outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name=n) for n in asked],
    )  # fmt: skip
    with grpc.insecure_channel(running.grpc_target) as channel:
        reply = GRPCInferenceServiceStub(channel).ModelInfer(message, timeout=60)
    by_name = {t.name: t for t in reply.outputs}
    assert [t.name for t in reply.outputs] == asked
    got = np.reshape(list(by_name["contributions"].contents.fp64_contents), (4, 4))
    np.testing.assert_allclose(got, want, atol=1e-12)
    np.testing.assert_allclose(list(by_name["base_value"].contents.fp64_contents), base, atol=1e-12)
    params = by_name["contributions"].parameters
    assert json.loads(params["features"].string_param) == NAMES
    metadata = httpx.get(f"{running.url}/v2/models/m").json()
    assert metadata["outputs"][-2:] == [
        {"name": "contributions", "datatype": "FP64", "shape": [-1, 4],
         "parameters": {"features": NAMES, "method": "tree_shap"}},
        {"name": "base_value", "datatype": "FP64", "shape": [-1]},
    ]  # fmt: skip


@pytest.mark.parametrize("library", ["xgboost", "lightgbm"])
def test_boosted_libraries_are_explained_by_their_own_treeshap_as_shap_explains_them(
    server: ServerFactory, tmp_path: Path, library: str
) -> None:
    if library == "xgboost":
        from xgboost import XGBClassifier

        model: Any = XGBClassifier(n_estimators=20, max_depth=3, n_jobs=1).fit(FRAME, Y3)
        raw = model.predict(FRAME.iloc[:6], output_margin=True)
    else:
        from lightgbm import LGBMClassifier

        model = LGBMClassifier(n_estimators=20, num_leaves=7, verbose=-1).fit(FRAME, Y3)
        raw = model.predict(FRAME.iloc[:6], raw_score=True)
    running = served(server, tmp_path, model)
    rows = FRAME.iloc[:6]
    direct = np.asarray(shap_module().TreeExplainer(model).shap_values(rows))  # [N, F, K]
    for _ in range(2):  # shap's answer first, then the library's own once they agreed
        answer = explain(running, {"instances": rows.to_dict("records")}).json()
        assert (answer["method"], answer["exact"]) == ("tree_shap", True)
        additive(answer)
        for i, row in enumerate(answer["explanations"]):
            k = [0, 1, 2].index(row["class"])
            assert row["value"] == pytest.approx(float(raw[i, k]), abs=1e-5)
            got = [row["contributions"][n] for n in NAMES]
            np.testing.assert_allclose(got, direct[i, :, k], atol=1e-5)


def test_a_linear_bundle_is_measured_from_its_publish_samples_means(
    server: ServerFactory, tmp_path: Path
) -> None:
    linear = LogisticRegression().fit(FRAME, Y2)
    joblib.dump(linear, tmp_path / "model.joblib")
    sample = tmp_path / "sample.csv"
    FRAME.iloc[:200].to_csv(sample, index=False)
    done = run_publish(
        "--model", str(tmp_path / "model.joblib"), "--name", "lin", "--version", "1.0.0",
        "--to", str(tmp_path / "registry"), "--sample", str(sample),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp_path / "registry" / "lin" / "1.0.0" / "model.json").read_text())
    means = X[:200].mean(axis=0)
    assert [f["mean"] for f in manifest["features"]] == pytest.approx(means.tolist(), abs=1e-9)
    running = server.start(str(tmp_path / "registry" / "lin" / "1.0.0"), name="m", timeout=60)
    answer = explain(running, {"instances": FRAME.iloc[300 - 3 :].to_dict("records")}).json()
    assert answer["reference"] == "publish sample mean"
    additive(answer)
    shap = shap_module()
    masker = shap.maskers.Independent(FRAME.iloc[:200], max_samples=200)
    direct = shap.LinearExplainer(linear, masker).shap_values(FRAME.iloc[300 - 3 :])
    for i, row in enumerate(answer["explanations"]):
        expected = linear.coef_[0] * (X[300 - 3 + i] - means)
        np.testing.assert_allclose([row["contributions"][n] for n in NAMES], expected, atol=1e-9)
        np.testing.assert_allclose([row["contributions"][n] for n in NAMES], direct[i], atol=1e-6)
        assert row["base_value"] == pytest.approx(linear.intercept_[0] + linear.coef_[0] @ means)


def test_a_worker_that_dies_is_a_503_and_the_next_explanation_gets_a_new_one(
    server: ServerFactory, tmp_path: Path
) -> None:
    running = one_slow_worker(server, tmp_path)
    assert explain(running, {"instances": [X[0].tolist()]}).status_code == 200  # starts it
    answers: list[httpx.Response] = []
    slow = threading.Thread(
        target=lambda: answers.append(explain(running, {"instances": X[:16].tolist()}))
    )
    slow.start()
    workers = wait_until(
        lambda: [p for p in _children(running.process.pid) if _is_explain_worker(p)],
        timeout=60,
        what="the explain worker process",
    )
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    slow.join(120)
    assert answers[0].status_code == 503, answers[0].text
    assert answers[0].json()["error"] == (
        "the explain worker stopped before it answered (killed, or out of memory); "
        "the next explanation starts a new one"
    )
    again = explain(running, {"instances": [X[0].tolist()]})
    assert again.status_code == 200, again.text
    assert httpx.post(f"{running.url}/v1/models/m:predict", json={"instances": [X[0].tolist()]}).status_code == 200  # fmt: skip


def _children(pid: int) -> list[int]:
    """The server's child processes, whichever of its threads started them."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _is_explain_worker(pid: int) -> bool:
    """A child of the server running multiprocessing's spawn (not its resource tracker)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return b"spawn_main" in command
