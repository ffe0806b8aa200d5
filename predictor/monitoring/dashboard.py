"""The Grafana dashboard, as code: panels over the metrics the predictor exports; pure.

``dashboard()`` returns the dashboard JSON that ``manifests/components/monitoring`` ships in a
ConfigMap labelled ``grafana_dashboard`` (Grafana's sidecar loads it). Every panel is per model
and version, so a canary and its stable, or a shadow and its primary, sit side by side. A test
starts the predictor, sends traffic, and checks every metric name used here against ``/metrics``.
"""

from __future__ import annotations

import re
from typing import Any

UID = "kserve-sklearn-predictor"
SELECT = 'model=~"$model"'
RATE = "[$__rate_interval]"
ERRORS = 'status=~"5..|INTERNAL|UNAVAILABLE|UNKNOWN|DEADLINE_EXCEEDED"'


def _rate(metric: str, selector: str = SELECT) -> str:
    return f"rate({metric}{{{selector}}}{RATE})"


def _quantile(q: float, metric: str, by: str) -> str:
    return f"histogram_quantile({q}, sum by ({by}, le) ({_rate(metric)}))"


def _panel(
    title: str, targets: list[tuple[str, str]], unit: str, description: str
) -> dict[str, Any]:
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [
            {"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(targets)
        ],
    }


def _bars(title: str, expr: str, description: str) -> dict[str, Any]:
    """A bar per series of an instant query, in the query's order (largest first)."""
    return {
        "type": "bargauge",
        "title": title,
        "description": description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "fieldConfig": {"defaults": {"unit": "short", "min": 0}, "overrides": []},
        "options": {
            "orientation": "horizontal",
            "displayMode": "basic",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        },
        "targets": [{"refId": "A", "expr": expr, "legendFormat": "{{feature}}", "instant": True}],
    }


def _row(title: str) -> dict[str, Any]:
    return {"type": "row", "title": title, "collapsed": False, "panels": []}


def panels() -> list[dict[str, Any]]:
    """The panels, top to bottom (grid positions are added by ``dashboard``)."""
    requests = "predictor_requests_total"
    latency = "predictor_request_duration_seconds_bucket"
    return [
        _row("Traffic, errors and latency (per version: canary and stable side by side)"),
        _panel(
            "Requests per second",
            [(f"sum by (version, protocol) ({_rate(requests)})", "{{version}} {{protocol}}")],
            "reqps",
            "Inference requests answered, by model version and protocol.",
        ),
        _panel(
            "Error ratio",
            [
                (
                    f"sum by (version) ({_rate(requests, SELECT + ', ' + ERRORS)}) / "
                    f"sum by (version) ({_rate(requests)})",
                    "{{version}}",
                )
            ],
            "percentunit",
            "Share of requests answered with a server error (5xx, or a gRPC failure).",
        ),
        _panel(
            "Latency percentiles",
            [
                (_quantile(q, latency, "version"), f"{{{{version}}}} p{int(q * 100)}")
                for q in (0.5, 0.95, 0.99)
            ],
            "s",
            "Time from request to response, by version.",
        ),
        _panel(
            "Traffic share by version",
            [
                (
                    f"sum by (version) ({_rate(requests)}) / "
                    f"ignoring(version) group_left sum({_rate(requests)})",
                    "{{version}}",
                )
            ],
            "percentunit",
            "How the traffic is split between versions (a canary's percent, a bandit's arms).",
        ),
        _row("Load"),
        _panel(
            "In-flight requests and overload refusals",
            [
                ("sum by (model) (predictor_in_flight_requests{" + SELECT + "})", "in flight"),
                (f"sum by (model) ({_rate('predictor_overload_refusals_total')})", "refused/s"),
            ],
            "short",
            "Requests being served now, and those refused at PREDICTOR_MAX_IN_FLIGHT.",
        ),
        _panel(
            "Rows per estimator call",
            [
                (_quantile(q, "predictor_batch_rows_bucket", "version"), f"p{int(q * 100)}")
                for q in (0.5, 0.95)
            ],
            "short",
            "Batch sizes the estimator sees (batching joins concurrent requests).",
        ),
        _panel(
            "Prediction cache hit ratio",
            [
                (
                    "sum by (version) ("
                    + _rate("predictor_cache_lookups_total", SELECT + ', result="hit"')
                    + ") / sum by (version) ("
                    + _rate("predictor_cache_lookups_total")
                    + ")",
                    "{{version}}",
                )
            ],
            "percentunit",
            "Share of rows answered from the prediction cache (when it is on).",
        ),
        _panel(
            "Readiness",
            [("min by (model) (predictor_model_ready{" + SELECT + "})", "{{model}}")],
            "short",
            "1 while the model takes traffic; 0 while it drains.",
        ),
        _row("What the model predicts"),
        _panel(
            "Predicted classes",
            [
                (
                    f"sum by (version, class) ({_rate('predictor_predictions_total')})",
                    "{{version}} {{class}}",
                )
            ],
            "short",
            "Rows per second by predicted class and version: drift shows as a change of shape.",
        ),
        _panel(
            "Probability of the predicted class (median)",
            [
                (
                    _quantile(0.5, "predictor_prediction_top_probability_bucket", "version"),
                    "{{version}}",
                )
            ],
            "percentunit",
            "How sure the model is; a falling median is an early sign of drift.",
        ),
        _row("Strategies: shadow and bandit"),
        _panel(
            "Shadow agreement",
            [
                (
                    "sum by (version, shadow_version) ("
                    + _rate("predictor_shadow_predictions_total", SELECT + ', agreement="agree"')
                    + ") / sum by (version, shadow_version) ("
                    + _rate("predictor_shadow_predictions_total")
                    + ")",
                    "{{version}} vs shadow {{shadow_version}}",
                )
            ],
            "percentunit",
            "Share of rows where the shadow predicts what the primary answered.",
        ),
        _panel(
            "Bandit: selection probability and mean reward",
            [
                ("predictor_bandit_selection_probability{" + SELECT + "}", "{{version}} p"),
                (
                    f"sum by (version) ({_rate('predictor_bandit_rewards_total')}) / "
                    f"sum by (version) ({_rate('predictor_bandit_feedback_total')})",
                    "{{version}} reward",
                ),
            ],
            "short",
            "How likely each arm is to answer next, and the reward it earns per feedback.",
        ),
        _row("Drift: each input feature against its bundle's reference"),
        _bars(
            "Feature drift (PSI), the most drifting first",
            "sort_desc(topk(20, max by (feature) (predictor_feature_drift_psi{" + SELECT + "})))",
            "Population stability index of each feature over the drift window: under 0.1 "
            "steady, 0.1-0.25 moved, over 0.25 moved a lot.",
        ),
        _panel(
            "Feature drift over time (the 5 most drifting)",
            [
                (
                    "topk(5, max by (feature) (predictor_feature_drift_psi{" + SELECT + "}))",
                    "{{feature}}",
                ),
                (
                    "max by (version) (predictor_prediction_drift_psi{" + SELECT + "})",
                    "predictions {{version}}",
                ),
            ],
            "short",
            "The features whose PSI is highest now, and the predictions' PSI, over time.",
        ),
        _panel(
            "Missing values per feature",
            [
                (
                    "topk(5, max by (feature) (predictor_feature_missing_ratio{" + SELECT + "}))",
                    "{{feature}}",
                )
            ],
            "percentunit",
            "Share of the drift window's rows where the feature was missing.",
        ),
        _panel(
            "Out-of-range numbers and unseen categories per second",
            [
                (
                    f"sum by (feature) ({_rate('predictor_feature_out_of_range_total')})",
                    "out of range: {{feature}}",
                ),
                (
                    f"sum by (feature) ({_rate('predictor_feature_unseen_category_total')})",
                    "unseen: {{feature}}",
                ),
            ],
            "short",
            "Numbers outside the reference's min and max; strings of a category never seen.",
        ),
        _row("Model repository: many models per process, within a budget"),
        _panel(
            "Models and bytes loaded",
            [
                ("predictor_repository_models_loaded", "models"),
                ("predictor_repository_bytes_loaded / 1048576", "MiB"),
            ],
            "short",
            "Models loaded now, and their size as measured at load (the budget bounds both).",
        ),
        _panel(
            "Loads, evictions and load failures per second",
            [
                (f"rate(predictor_repository_loads_total{RATE})", "loads"),
                (f"rate(predictor_repository_evictions_total{RATE})", "evictions"),
                (
                    f"sum by (model) ({_rate('predictor_repository_load_failures_total')})",
                    "failed: {{model}}",
                ),
            ],
            "ops",
            "Evictions close to loads mean the budget is too small for the traffic's spread.",
        ),
    ]


def dashboard() -> dict[str, Any]:
    """The whole dashboard JSON, with a datasource and a model variable."""
    laid_out = []
    y = 0
    x = 0
    for panel in panels():
        if panel["type"] == "row":
            y += 8 if x else 0
            x = 0
            laid_out.append(panel | {"gridPos": {"h": 1, "w": 24, "x": 0, "y": y}})
            y += 1
            continue
        laid_out.append(panel | {"gridPos": {"h": 8, "w": 12, "x": x, "y": y}})
        x, y = (12, y) if x == 0 else (0, y + 8)
    for i, panel in enumerate(laid_out, start=1):
        panel["id"] = i
    return {
        "uid": UID,
        "title": "KServe sklearn predictor",
        "tags": ["kserve", "scikit-learn"],
        "schemaVersion": 39,
        "time": {"from": "now-1h", "to": "now"},
        "refresh": "30s",
        "templating": {
            "list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus"},
                {
                    "name": "model",
                    "type": "query",
                    "datasource": {"type": "prometheus", "uid": "${datasource}"},
                    "query": "label_values(predictor_model_info, model)",
                    "includeAll": True,
                    "multi": True,
                },
            ]
        },
        "panels": laid_out,
    }


def metric_names(document: dict[str, Any]) -> set[str]:
    """Every ``predictor_*`` metric name the dashboard's queries and variables use."""
    texts = [t["expr"] for p in document["panels"] for t in p.get("targets", [])]
    texts += [v.get("query", "") for v in document["templating"]["list"]]
    return {m for text in texts for m in re.findall(r"\bpredictor_[a-z_]+\b", text)}
