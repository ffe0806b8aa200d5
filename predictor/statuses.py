"""Which answer statuses are the server's own failures, as ``predictor_requests_total`` labels them.

5xx answers over REST, and the gRPC codes of a failure on our side. A caller's mistake (4xx,
``INVALID_ARGUMENT``) is not one. The canary analysis and the home page's error ratio count
the same statuses.
"""

from __future__ import annotations

SERVER_FAILURES = "5..|INTERNAL|UNAVAILABLE|UNKNOWN|DEADLINE_EXCEEDED"
"""A regular expression over the ``status`` label (PromQL ``=~`` matches it whole)."""
