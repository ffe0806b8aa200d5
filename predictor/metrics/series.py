"""Every Prometheus series the predictor exports, defined once: serving, shadow and bandit.

KServe exports four latency histograms labelled by model name only. These add what operators and
the canary analysis need: requests and errors by model, version, protocol and status; latency;
in-flight requests; batch sizes; cache hits; a ``model_info`` gauge (version, digest, library
versions); model load time; the distribution of predictions (counts per predicted class, the
top-class probability, a histogram for regression), which canary analysis compares between
versions; the shadow's agreement; and the bandit's pulls, rewards and selection probabilities.
With ``--workers`` above 1, ``__main__`` sets ``PROMETHEUS_MULTIPROC_DIR`` before anything imports
prometheus_client, and ``/metrics`` aggregates every worker's values.
"""

from __future__ import annotations

import os

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
PROBABILITY_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
REGRESSION_BUCKETS = (-1000.0, -100.0, -10.0, -1.0, 0.0, 1.0, 10.0, 100.0, 1000.0, 10000.0)

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
"""Read once at import: whether several worker processes share the metric files."""

REQUESTS = Counter(
    "predictor_requests",
    "Inference requests by model, version, protocol (v1, v2, grpc) and status code.",
    ["model", "version", "protocol", "status"],
)
LATENCY = Histogram(
    "predictor_request_duration_seconds",
    "Time from request to response, by model, version and protocol.",
    ["model", "version", "protocol"],
    buckets=LATENCY_BUCKETS,
)
IN_FLIGHT = Gauge(
    "predictor_in_flight_requests",
    "Inference requests being served now.",
    ["model"],
    multiprocess_mode="livesum",
)
BATCH_ROWS = Histogram(
    "predictor_batch_rows",
    "Rows per call into the estimator.",
    ["model", "version"],
    buckets=BATCH_BUCKETS,
)
CACHE = Counter(
    "predictor_cache_lookups",
    "Prediction cache lookups by result (hit or miss).",
    ["model", "version", "result"],
)
MODEL_INFO = Gauge(
    "predictor_model_info",
    "The model being served (always 1), with its version, digest and library versions.",
    ["model", "version", "sha256", "engine", "sklearn", "numpy", "python"],
    multiprocess_mode="max",
)
MODEL_READY = Gauge(
    "predictor_model_ready",
    "1 while the model takes traffic; 0 while it drains before a shutdown.",
    ["model"],
    multiprocess_mode="livemin",
)
OVERLOAD_REFUSALS = Counter(
    "predictor_overload_refusals",
    "Requests refused at once because PREDICTOR_MAX_IN_FLIGHT were being served.",
    ["model"],
)
LOAD_SECONDS = Gauge(
    "predictor_model_load_seconds",
    "Seconds spent fetching, verifying, unpickling and accepting the model.",
    ["model", "version"],
    multiprocess_mode="max",
)
PREDICTED_CLASS = Counter(
    "predictor_predictions",
    "Predicted rows by class (classifiers; class is empty for regressors).",
    ["model", "version", "class"],
)
TOP_PROBABILITY = Histogram(
    "predictor_prediction_top_probability",
    "Probability of the predicted class, for rows where probabilities were computed.",
    ["model", "version"],
    buckets=PROBABILITY_BUCKETS,
)
REGRESSION_VALUE = Histogram(
    "predictor_prediction_value",
    "Predicted values of regressors.",
    ["model", "version"],
    buckets=REGRESSION_BUCKETS,
)

# The shadow (predictor.shadow).
SHADOW_PREDICTIONS = Counter(
    "predictor_shadow_predictions",
    "Rows answered by the primary and the shadow, by whether they agree.",
    ["model", "version", "shadow_version", "agreement"],
)
SHADOW_DELTA = Histogram(
    "predictor_shadow_probability_delta",
    "Largest absolute difference between the primary's and the shadow's probabilities, per row.",
    ["model", "version", "shadow_version"],
    buckets=(0.001, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0),
)
SHADOW_ERRORS = Counter(
    "predictor_shadow_errors",
    "Shadow calls that failed (the callers were answered by the primary all the same).",
    ["model", "version"],
)
SHADOW_SECONDS = Histogram(
    "predictor_shadow_duration_seconds",
    "Time the shadow took per batch of queued requests.",
    ["model", "version"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0),
)
PREDICTION_LOG_SPOOLED = Gauge(
    "predictor_prediction_log_spooled_bytes",
    "Prediction log files closed and waiting on local disk for their upload.",
    multiprocess_mode="livesum",
)
PREDICTION_LOG_UPLOAD_FAILURES = Counter(
    "predictor_prediction_log_upload_failures",
    "Prediction log uploads that failed (the file is kept and tried again).",
)
PREDICTION_LOG_DROPPED = Counter(
    "predictor_prediction_log_records_dropped",
    "Prediction log records dropped before upload because the local spool was full.",
)
SHADOW_DROPPED = Counter(
    "predictor_shadow_dropped",
    "Requests the shadow did not see because its queue was full.",
    ["model", "version"],
)

# The bandit (predictor.bandit).
BANDIT_PULLS = Counter(
    "predictor_bandit_pulls", "Requests answered by each arm.", ["model", "version"]
)
BANDIT_FEEDBACK = Counter(
    "predictor_bandit_feedback", "Rewards received for each arm.", ["model", "version"]
)
BANDIT_REWARDS = Counter(
    "predictor_bandit_rewards", "Sum of the rewards received for each arm.", ["model", "version"]
)
BANDIT_STATE_UP = Gauge(
    "predictor_bandit_state_up",
    "1 while the bandit's shared state (Redis) answers; 0 while it routes without it.",
    ["model"],
    multiprocess_mode="mostrecent",
)
BANDIT_FALLBACK_ROUTED = Counter(
    "predictor_bandit_fallback_routed",
    "Requests routed without the shared state: from the last state read, or uniformly.",
    ["model", "source"],
)
BANDIT_PULLS_HELD = Gauge(
    "predictor_bandit_pulls_held",
    "Pulls made while the shared state was unreachable, held to be written when it is back.",
    ["model"],
    multiprocess_mode="livesum",
)
BANDIT_PROBABILITY = Gauge(
    "predictor_bandit_selection_probability",
    "How likely each arm is to answer the next request.",
    ["model", "version"],
    multiprocess_mode="mostrecent",
)

# The model repository (predictor.repository): many models in one process, within a budget.
REPOSITORY_LOADED = Gauge(
    "predictor_repository_models_loaded",
    "Models loaded now (a model repository within its budget).",
    multiprocess_mode="livesum",
)
REPOSITORY_BYTES = Gauge(
    "predictor_repository_bytes_loaded",
    "Bytes of the models loaded now, as measured at each load (their pickled state).",
    multiprocess_mode="livesum",
)
# Loads and evictions are not counted per model: a repository may hold thousands of models,
# and the series of a model it does not hold are dropped (metrics.repository.unloaded).
REPOSITORY_LOADS = Counter("predictor_repository_loads", "Models loaded, on demand or asked for.")
REPOSITORY_EVICTIONS = Counter(
    "predictor_repository_evictions", "Models unloaded to make room (least recently used first)."
)
REPOSITORY_LOAD_FAILURES = Counter(
    "predictor_repository_load_failures",
    "Loads that failed (the failure is remembered for the back-off period).",
    ["model"],
)

# Live drift per feature (predictor.drift), against the reference a bundle carries.
FEATURE_PSI = Gauge(
    "predictor_feature_drift_psi",
    "Population stability index of a feature over the drift window, against the reference.",
    ["model", "version", "feature"],
    multiprocess_mode="max",
)
PREDICTION_PSI = Gauge(
    "predictor_prediction_drift_psi",
    "Population stability index of the predictions over the drift window, against the reference.",
    ["model", "version"],
    multiprocess_mode="max",
)
FEATURE_MISSING = Gauge(
    "predictor_feature_missing_ratio",
    "Share of the drift window's rows where the feature was missing.",
    ["model", "version", "feature"],
    multiprocess_mode="max",
)
FEATURE_OUT_OF_RANGE = Counter(
    "predictor_feature_out_of_range",
    "Numbers outside the reference's min and max.",
    ["model", "version", "feature"],
)
FEATURE_UNSEEN = Counter(
    "predictor_feature_unseen_category",
    "Strings of a category the reference never saw.",
    ["model", "version", "feature"],
)
DRIFT_ROWS = Gauge(
    "predictor_drift_window_rows",
    "Rows in the drift window (the indexes mean little over a few rows).",
    ["model", "version"],
    multiprocess_mode="min",
)
DRIFT_DROPPED = Counter(
    "predictor_drift_dropped",
    "Requests drift did not see because its queue was full (traffic above what it summarises).",
    ["model", "version"],
)
