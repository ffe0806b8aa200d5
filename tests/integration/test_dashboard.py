"""Every metric the shipped dashboard queries is one the predictor really exports.

Real processes: a model with a shadow and the prediction cache on, a bandit of two arms, and a
model repository that loads, evicts and fails a load, each sent traffic; the names in every panel must be among the families their ``/metrics``
pages declare (a counter's ``_total``, a histogram's ``_bucket``).
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import joblib

from predictor.monitoring.dashboard import dashboard, metric_names
from predictor.publishing.publish import BundleSpec, publish
from tests.helpers import ServerFactory, wait_until

ROWS = {"instances": [[0.1, -0.3, 1.2, 0.5], [-1.0, 0.4, 0.0, 2.0]]}


def exported(text: str) -> set[str]:
    """The sample names a /metrics page can answer queries for."""
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            suffixes = ("_bucket", "_sum", "_count") if kind == "histogram" else ("",)
            names.update(name + s for s in suffixes)
        elif line and not line.startswith("#"):
            names.add(line.split("{", 1)[0].split(" ", 1)[0])
    return names


def test_every_metric_in_the_dashboard_is_exported(
    server: ServerFactory, int_classifier_file: Path, tmp_path: Path
) -> None:
    shadowed = server.start(
        str(int_classifier_file),
        name="taxi",
        args=["--shadow_model_uri", str(int_classifier_file), "--cache_size", "100"],
    )
    other = tmp_path / "other.joblib"
    estimator = joblib.load(int_classifier_file)
    joblib.dump(estimator.set_params(C=0.5), other)  # another version: other bytes
    arms = f"{int_classifier_file},{other}"
    bandit = server.start(None, name="arms", args=["--bandit_model_uris", arms])
    found: set[str] = set()
    pages = []
    for running, name in ((shadowed, "taxi"), (bandit, "arms")):
        with httpx.Client(base_url=running.url, timeout=10) as client:
            for _ in range(3):
                answer = client.post(f"/v1/models/{name}:predict", json=ROWS)
                assert answer.status_code == 200, answer.text
            if "id" in answer.json():
                client.post(
                    f"/v2/models/{name}/feedback", json={"id": answer.json()["id"], "reward": 1}
                )
            page = client.get("/metrics").text
            if name == "taxi":  # the shadow compares off the response path, every 0.1 s

                def compared(client: httpx.Client = client) -> str | None:
                    page = client.get("/metrics").text
                    return page if "predictor_shadow_predictions_total{" in page else None

                page = wait_until(compared, timeout=10, what="the shadow's first comparison")
            pages.append(page)
            found |= exported(pages[-1])
    repository = tmp_path / "repository"
    for name in ("a", "b"):
        (repository / name).mkdir(parents=True)
        joblib.dump(estimator, repository / name / "model.joblib")
    (repository / "broken").mkdir()
    (repository / "broken" / "model.joblib").write_bytes(b"not a model")
    many = server.start(
        None, args=["--model_repository", str(repository), "--max_loaded_models", "1"]
    )
    with httpx.Client(base_url=many.url, timeout=10) as client:
        for name in ("a", "b", "broken"):  # a load, an eviction, a failure
            client.post(f"/v1/models/{name}:predict", json=ROWS)
        pages.append(client.get("/metrics").text)
    found |= exported(pages[-1])
    sample = tmp_path / "sample.csv"
    sample.write_text("a,b,c,d\n" + "\n".join(",".join(map(str, r)) for r in ROWS["instances"]))
    bundle = publish(
        BundleSpec(int_classifier_file, "taxi", "1.0.0", sample_file=sample), str(tmp_path / "r")
    )
    watched = server.start(bundle, name="taxi")
    with httpx.Client(base_url=watched.url, timeout=10) as client:
        client.post("/v1/models/taxi:predict", json=ROWS)

        def summarised(client: httpx.Client = client) -> str | None:
            page = client.get("/metrics").text
            rows = re.search(
                r'^predictor_drift_window_rows\{model="taxi",[^}]*\} (\S+)$', page, re.M
            )
            return page if rows and float(rows.group(1)) == len(ROWS["instances"]) else None

        pages.append(wait_until(summarised, timeout=10, what="drift's first summary"))
    found |= exported(pages[-1])
    used = metric_names(dashboard())
    assert used, "the dashboard queries no metric"
    assert used <= found, f"not exported: {sorted(used - found)}"
    assert {"predictor_shadow_predictions_total", "predictor_bandit_rewards_total"} <= used
    # Fixed label values in the queries (agreement="agree", result="hit") must be ones exported.
    exprs = [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]
    pinned = {
        (metric, label, value)
        for expr in exprs
        for metric, selector in re.findall(r"(predictor_[a-z_]+)\{([^}]*)\}", expr)
        for label, value in re.findall(r'(\w+)="([^"$]*)"', selector)
    }
    assert pinned, "no query pins a label value"
    samples = "\n".join(pages)
    for metric, label, value in pinned:
        assert re.search(rf'^{metric}\{{[^}}]*{label}="{re.escape(value)}"', samples, re.M), (
            metric,
            label,
            value,
        )
