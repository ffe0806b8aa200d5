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
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from predictor.errors import StorageAuthError, StorageError, StorageNotFoundError
from predictor.stores.files import md5_file, partial_file
from predictor.stores.retrying import Transient, within_deadline
from predictor.stores.uris import ModelURI, as_prefix, object_uri

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
    """A ``BucketStore`` over boto3; every failure turned into one ``StorageError``."""

    last_generation: int | None = None
    """S3 has no generations: a published bundle is pinned by its digest."""

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

    def download(self, uri: ModelURI, dest: Path) -> dict[str, int | None]:
        """Download one object, or every object under a prefix, into ``dest``.

        Returns:
            The downloaded files' paths relative to ``dest`` (S3 has no generations).
        """
        if not uri.is_prefix:
            name = Path(uri.path).name
            self._call(uri, lambda: self._download_object(uri.bucket, uri.path, dest / name))
            return {name: None}
        prefix = as_prefix(uri.path)
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
        return dict.fromkeys(names)

    def download_object(self, uri: ModelURI, dest: Path) -> str:
        """Download the one object ``uri`` names into ``dest``; returns its ETag."""
        return self._call(
            uri, lambda: self._download_object(uri.bucket, uri.path, dest / Path(uri.path).name)
        )

    def list_names(self, bucket: str, prefix: str) -> list[str]:
        """The keys under ``prefix`` (not folder markers), in key order."""
        keys = self.list_keys(object_uri("s3", bucket, prefix), prefix)
        return [k for k in keys if not k.endswith("/")]

    def list_keys(self, uri: ModelURI, prefix: str) -> list[str]:
        """Every key under ``prefix`` in the URI's bucket, in key order."""

        def listing() -> list[str]:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=uri.bucket, Prefix=prefix
            )
            return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

        return self._call(uri, listing)

    def upload_new(self, path: Path, bucket: str, key: str) -> bool:
        """Upload a file as a new object; False (and nothing written) if the key exists."""
        from botocore.exceptions import ClientError

        uri = object_uri("s3", bucket, key)

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

    def same_content(self, path: Path, bucket: str, key: str) -> bool:
        """Whether the object's ETag (a single-part upload's MD5) is the local file's MD5."""
        return self.etag(bucket, key) == md5_file(path).hex()

    def delete(self, bucket: str, names: list[str]) -> None:
        """Delete objects (S3 answers a missing key as deleted)."""
        for key in names:
            uri = object_uri("s3", bucket, key)
            self._call(uri, functools.partial(self._client.delete_object, Bucket=bucket, Key=key))

    def etag(self, bucket: str, key: str) -> str | None:
        """The object's ETag without quotes (an MD5 for single-part uploads), None if absent."""
        from botocore.exceptions import ClientError

        uri = object_uri("s3", bucket, key)

        def head() -> str | None:
            try:
                found = self._client.head_object(Bucket=bucket, Key=key)
            except ClientError as e:
                if _code(e) in _NOT_FOUND_CODES:
                    return None
                raise
            return str(found["ETag"]).strip('"')

        return self._call(uri, head)

    def _download_object(self, bucket: str, key: str, target: Path) -> str:
        with partial_file(target) as partial:
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
        return str(answer.get("ETag", "")).strip('"')

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
