"""CloudEvents over HTTP, both modes, as KServe answers them; pure functions.

- **Binary mode**: the event's attributes are ``ce-*`` headers, ``ce-specversion`` among them,
  and the body is its data (here a v1 or v2 request). The answer is the prediction with ``ce-*``
  headers of its own.
- **Structured mode**: the body is the whole event, ``Content-Type: application/cloudevents+json``,
  with the request as its ``data``. The answer is a structured event whose ``data`` is the
  prediction (stock KServe answers 500 here).

The response event is KServe's: type ``io.kserve.inference.response``, source
``io.kserve.inference.<model>``, a new id and the time. A request that looks like an event but
lacks a required attribute gets a 400 naming what is missing; its values are never echoed.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from predictor.errors import PayloadError

SPECVERSION = "1.0"
REQUIRED = ("specversion", "id", "source", "type")
"""The attributes every CloudEvent carries (CloudEvents 1.0, "Required Attributes")."""
RESPONSE_TYPE = "io.kserve.inference.response"
STRUCTURED = "application/cloudevents+json"
BINARY = "binary"
BINARY_PREFIX = b"ce-"


@dataclass(frozen=True)
class RequestEvent:
    """An inference request that came as a CloudEvent: its mode and the request inside it."""

    mode: str  # BINARY or STRUCTURED
    data: bytes | None = None
    """The request body inside a structured event; None in binary mode (the HTTP body is it)."""


def request_event(headers: Iterable[tuple[bytes, bytes]], body: bytes) -> RequestEvent | None:
    """The event an HTTP request carries, or None for a plain request.

    Raises:
        PayloadError: it is an event, but not a valid one; the message says what is missing.
    """
    attributes: dict[str, bytes] = {}
    structured = False
    for key, value in headers:
        if key.startswith(BINARY_PREFIX):
            attributes[key[3:].decode("latin-1")] = value
        elif key == b"content-type":
            structured = value.split(b";", 1)[0].strip().lower() == STRUCTURED.encode()
    if structured:
        return RequestEvent(STRUCTURED, structured_data(body))
    if "specversion" not in attributes:
        # Not an event (the HTTP binding marks binary mode by ce-specversion). KServe's logger
        # agent, for one, sets a lone ce-id on the requests it forwards.
        return None
    missing = [f"ce-{name}" for name in REQUIRED if not attributes.get(name)]
    if missing:
        raise PayloadError(
            f"a binary-mode CloudEvent needs the headers {', '.join(f'ce-{n}' for n in REQUIRED)}; "
            f"missing: {', '.join(missing)}"
        )
    _check_specversion(attributes["specversion"].decode("latin-1"))
    return RequestEvent(BINARY)


def structured_data(body: bytes) -> bytes:
    """The request inside a structured-mode event, as JSON bytes.

    Raises:
        PayloadError: the body is not a JSON object, lacks a required attribute or data, or
            its ``data_base64`` is not base64.
    """
    try:
        event = orjson.loads(body) if body else None
    except orjson.JSONDecodeError as e:
        raise PayloadError(
            f"a structured CloudEvent must be a JSON object; the body is not valid JSON "
            f"({e.msg} at byte {e.pos})"
        ) from e
    if not isinstance(event, dict):
        raise PayloadError("a structured CloudEvent must be a JSON object")
    missing = [name for name in REQUIRED if not isinstance(event.get(name), str) or not event[name]]
    if "data" not in event and "data_base64" not in event:
        missing.append("data")
    if missing:
        raise PayloadError(
            f"a structured CloudEvent needs the attributes {', '.join(REQUIRED)} and data; "
            f"missing: {', '.join(missing)}"
        )
    _check_specversion(event["specversion"])
    if "data" in event:
        data = event["data"]
        return data.encode() if isinstance(data, str) else orjson.dumps(data)
    try:
        return base64.b64decode(event["data_base64"], validate=True)
    except (binascii.Error, TypeError, ValueError) as e:
        raise PayloadError("data_base64 of the CloudEvent is not valid base64") from e


def _check_specversion(version: str) -> None:
    if version != SPECVERSION:
        raise PayloadError(f"expected CloudEvents specversion {SPECVERSION}; got another version")


def response_attributes(model_name: str) -> dict[str, str]:
    """The attributes of the answering event, as KServe sets them."""
    return {
        "specversion": SPECVERSION,
        "id": str(uuid.uuid4()),
        "source": f"io.kserve.inference.{model_name}",
        "type": RESPONSE_TYPE,
        "time": datetime.now(UTC).isoformat(),
    }


def binary_headers(attributes: dict[str, str]) -> dict[str, str]:
    """The ``ce-*`` headers of a binary-mode answer."""
    return {f"ce-{name}": value for name, value in attributes.items()}


def structured_body(attributes: dict[str, str], content: bytes, content_type: str) -> bytes:
    """A structured-mode answer: the attributes and the prediction as ``data``.

    ``content`` is the answer as sent in binary mode: a JSON document goes in ``data`` as it
    is (not parsed and serialized again), other bytes go in ``data_base64``.
    """
    event: dict[str, Any] = dict(attributes, datacontenttype=content_type)
    if content_type == "application/json":
        event["data"] = orjson.Fragment(content)
    else:
        event["data_base64"] = base64.b64encode(content).decode("ascii")
    return orjson.dumps(event)
