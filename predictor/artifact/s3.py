"""Amazon S3 (and S3-compatible stores): a thin adapter over boto3.

Credentials and endpoint come from the standard AWS chain (``AWS_ACCESS_KEY_ID``, ``AWS_PROFILE``,
IRSA's web identity, instance roles) and ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3`` for
MinIO, GCS's interoperability endpoint and others. Transient failures are retried with backoff
inside one total deadline; every failure becomes one ``StorageError`` naming the URI. Objects
land in ``.partial`` files renamed only when the whole length has arrived. Uploads are
create-only (``If-None-Match: *``), so a published object is never overwritten.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from predictor.artifact.retrying import Transient, within_deadline
from predictor.artifact.storage import ModelURI
from predictor.errors import StorageAuthError, StorageError, StorageNotFoundError

logger = logging.getLogger(__name__)

T = TypeVar("T")

_AUTH_CODES = frozenset(
    {"AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"}
)
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_TRANSIENT_CODES = frozenset(
    {
        "500",
        "502",
        "503",
        "504",
        "InternalError",
        "SlowDown",
        "ServiceUnavailable",
        "RequestTimeout",
    }
)
_CHUNK = 1 << 20


class S3Store:
    """Download and create-only upload, every failure turned into one ``StorageError``."""

    def __init__(self, *, deadline_s: float) -> None:
        self._deadline_s = deadline_s
        self._timeout = min(60.0, deadline_s)

    @functools.cached_property
    def _client(self) -> Any:
        """One client per store; boto3 is imported only by runs that use S3."""
        import boto3
        from botocore.config import Config

        config = Config(
            connect_timeout=min(10.0, self._timeout),
            read_timeout=self._timeout,
            retries={"max_attempts": 1, "mode": "standard"},  # retried here, within the deadline
        )
        return boto3.session.Session().client("s3", config=config)

    def download(self, uri: ModelURI, dest: Path) -> list[str]:
        """Download one object, or every object under a prefix, into ``dest``.

        Returns:
            The downloaded files' paths relative to ``dest``.
        """
        if not uri.is_prefix:
            name = Path(uri.path).name
            self._call(uri, lambda: self._download_object(uri.bucket, uri.path, dest / name))
            return [name]
        prefix = uri.path if uri.path == "" or uri.path.endswith("/") else uri.path + "/"
        names = [k[len(prefix) :] for k in self.list_keys(uri, prefix) if not k.endswith("/")]
        if not names:
            raise StorageNotFoundError(f"{uri.raw}: no objects under s3://{uri.bucket}/{prefix}")
        for relative in names:
            self._call(
                uri,
                functools.partial(
                    self._download_object, uri.bucket, prefix + relative, dest / relative
                ),
            )
        return names

    def list_keys(self, uri: ModelURI, prefix: str) -> list[str]:
        """Every key under ``prefix`` in the URI's bucket, in key order."""

        def listing() -> list[str]:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=uri.bucket, Prefix=prefix
            )
            return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

        return self._call(uri, listing)

    def put_new(self, path: Path, bucket: str, key: str) -> bool:
        """Upload a file as a new object; False (and nothing written) if the key exists."""
        from botocore.exceptions import ClientError

        uri = ModelURI(raw=f"s3://{bucket}/{key}", scheme="s3", bucket=bucket, path=key)

        def put() -> bool:
            try:
                with path.open("rb") as body:
                    self._client.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*")
            except ClientError as e:
                if _code(e) in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                    return False
                raise
            return True

        return self._call(uri, put)

    def etag(self, bucket: str, key: str) -> str | None:
        """The object's ETag without quotes (an MD5 for single-part uploads), None if absent."""
        from botocore.exceptions import ClientError

        uri = ModelURI(raw=f"s3://{bucket}/{key}", scheme="s3", bucket=bucket, path=key)

        def head() -> str | None:
            try:
                found = self._client.head_object(Bucket=bucket, Key=key)
            except ClientError as e:
                if _code(e) in _NOT_FOUND_CODES:
                    return None
                raise
            return str(found["ETag"]).strip('"')

        return self._call(uri, head)

    def _download_object(self, bucket: str, key: str, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        try:
            answer = self._client.get_object(Bucket=bucket, Key=key)
            expected = int(answer["ContentLength"])
            written = 0
            with partial.open("wb") as out:
                for chunk in answer["Body"].iter_chunks(_CHUNK):
                    out.write(chunk)
                    written += len(chunk)
            if written != expected:
                raise StorageError(
                    f"s3://{bucket}/{key}: expected {expected} bytes, received {written}; "
                    "nothing was kept"
                )
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)

    def _call(self, uri: ModelURI, work: Callable[[], T]) -> T:
        """Run ``work``, retrying transient faults until the deadline; every failure classified."""
        return within_deadline(
            lambda: self._classified(uri, work),
            deadline_s=self._deadline_s,
            uri=uri.raw,
            store="S3",
        )

    def _classified(self, uri: ModelURI, work: Callable[[], T]) -> T:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectionError,
            NoCredentialsError,
            PartialCredentialsError,
        )

        try:
            return work()
        except (NoCredentialsError, PartialCredentialsError) as e:
            raise StorageAuthError(
                f"{uri.raw}: no AWS credentials found; set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or give the pod a role (IRSA)"
            ) from e
        except ClientError as e:
            code = _code(e)
            if code in _AUTH_CODES:
                raise StorageAuthError(
                    f"{uri.raw}: permission denied ({code}); grant the serving identity "
                    f"s3:GetObject and s3:ListBucket on bucket '{uri.bucket}'"
                ) from e
            if code == "NoSuchBucket":
                raise StorageNotFoundError(
                    f"{uri.raw}: bucket '{uri.bucket}' does not exist"
                ) from e
            if code in _NOT_FOUND_CODES:
                raise StorageNotFoundError(f"{uri.raw}: no such object") from e
            if code not in _TRANSIENT_CODES:
                raise StorageError(f"{uri.raw}: S3 request failed ({code})") from e
            raise Transient() from e
        except (ConnectionError, BotoCoreError) as e:
            raise Transient() from e


def _code(error: Any) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))
