"""A thin adapter over Prometheus' HTTP query API (``/api/v1/query``)."""

from __future__ import annotations

import httpx

from predictor.rollout.errors import MetricsUnavailableError, RolloutError


class Prometheus:
    """Instant queries against one Prometheus server."""

    def __init__(
        self, url: str, *, timeout: float = 10.0, client: httpx.Client | None = None
    ) -> None:
        self._url = url.rstrip("/")
        self._client = client or httpx.Client(timeout=timeout)

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()

    def query(self, promql: str) -> list[tuple[dict[str, str], float]]:
        """Run ``promql``; one (labels, value) per series of the instant vector or scalar.

        Raises:
            MetricsUnavailableError: Prometheus is unreachable, or failed (5xx, not JSON).
            RolloutError: Prometheus refused the query (4xx: the query is wrong).
        """
        try:
            response = self._client.get(f"{self._url}/api/v1/query", params={"query": promql})
            if response.status_code >= 500:
                raise MetricsUnavailableError(
                    f"Prometheus at {self._url} failed: HTTP {response.status_code}"
                )
            body = response.json()
        except (httpx.HTTPError, ValueError) as e:
            raise MetricsUnavailableError(
                f"Prometheus at {self._url} did not answer: {type(e).__name__}"
            ) from e
        if response.status_code != 200 or body.get("status") != "success":
            raise RolloutError(
                f"Prometheus refused {promql!r}: {body.get('error', response.status_code)}"
            )
        data = body["data"]
        if data["resultType"] == "scalar":
            return [({}, float(data["result"][1]))]
        return [(dict(row["metric"]), float(row["value"][1])) for row in data["result"]]
