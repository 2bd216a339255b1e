"""Objects in an S3 bucket through the minio SDK (MinIO in production)."""

import base64
import builtins
import hashlib
import io
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import urllib3
from minio import Minio
from minio.commonconfig import DISABLED, ENABLED, Filter
from minio.deleteobjects import DeleteObject
from minio.error import MinioException, S3Error
from minio.lifecycleconfig import Expiration, LifecycleConfig, Rule
from minio.time import to_iso8601utc

from services.common.objectstore.base import (
    CHUNK_SIZE,
    ExpiryRule,
    ObjectInfo,
    ObjectLockMissing,
    ObjectNotFound,
    StoreUnavailable,
    check_expiry_rule,
    check_key,
    check_metadata,
)

_META_PREFIX = "x-amz-meta-"
_MISSING = {"NoSuchKey", "NoSuchObject", "NotFound", "ResourceNotFound"}
_NO_LOCK = {"ObjectLockConfigurationNotFoundError", "InvalidRequest"}
# Retained versions are written in compliance mode: unlike governance mode, no credential (not the
# bucket owner's, not MinIO's root) can shorten or lift it before the date.
_LOCK_MODE = "COMPLIANCE"
# S3's multi-object delete takes at most 1000 keys a request.
_DELETE_BATCH = 1000


def _client(endpoint: str, access_key: str, secret_key: str, region: str) -> Minio:
    parts = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
    # Fail fast when the store is down (the caller decides to spool or retry), instead of
    # urllib3's default of retrying for minutes inside one call.
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=3.0, read=30.0),
        retries=urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=(500, 502, 503, 504)),
        maxsize=16,
    )
    return Minio(
        parts.netloc,
        access_key=access_key or None,
        secret_key=secret_key or None,
        region=region,
        secure=parts.scheme == "https",
        http_client=http,
    )


class S3Store:
    # The server's lifecycle engine deletes expired objects (MinIO scans continuously).
    expires_by_itself = True

    def __init__(self, endpoint: str, access_key: str, secret_key: str, region: str, bucket: str) -> None:
        self.bucket = check_key(bucket)
        self.client = _client(endpoint, access_key, secret_key, region)

    def _call(self, what: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except S3Error as exc:
            if exc.code in _MISSING:
                raise ObjectNotFound(what) from exc
            raise StoreUnavailable(f"{what}: {exc.code}: {exc.message}") from exc
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise StoreUnavailable(f"{what}: {exc}") from exc

    def ensure_bucket(self, object_lock: bool = False) -> None:
        if not self._call(self.bucket, self.client.bucket_exists, self.bucket):
            try:
                self._call(self.bucket, self.client.make_bucket, self.bucket, object_lock=object_lock)
            except StoreUnavailable as exc:
                if "BucketAlreadyOwnedByYou" not in str(exc) and "BucketAlreadyExists" not in str(exc):
                    raise
        if object_lock:
            try:
                self._call(self.bucket, self.client.get_object_lock_config, self.bucket)
            except StoreUnavailable as exc:
                if not any(code in str(exc) for code in _NO_LOCK):
                    raise
                raise ObjectLockMissing(
                    f"bucket {self.bucket} exists without object lock, which S3 cannot add afterwards: "
                    "create it anew with object lock (or name another bucket)"
                ) from exc

    def ping(self) -> bool:
        try:
            return bool(self._call(self.bucket, self.client.bucket_exists, self.bucket))
        except (StoreUnavailable, ObjectNotFound):
            return False

    def put(
        self,
        key: str,
        data: bytes,
        metadata: Mapping[str, str] | None = None,
        content_type: str = "application/octet-stream",
    ) -> ObjectInfo:
        return self._put(key, metadata, self.client.put_object, io.BytesIO(data), len(data), content_type=content_type)

    def put_file(
        self,
        key: str,
        path: Path,
        metadata: Mapping[str, str] | None = None,
        content_type: str = "application/octet-stream",
    ) -> ObjectInfo:
        return self._put(key, metadata, self.client.fput_object, str(path), content_type=content_type)

    def _put(self, key: str, metadata: Mapping[str, str] | None, upload, *args, **kwargs) -> ObjectInfo:
        meta = check_metadata(metadata)
        self._call(key, upload, self.bucket, check_key(key), *args, metadata=meta, **kwargs)
        return self.stat(key)

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        return b"".join(self.iter_chunks(key, offset, length))

    def iter_chunks(
        self, key: str, offset: int = 0, length: int | None = None, chunk_size: int = CHUNK_SIZE
    ) -> Iterator[bytes]:
        check_key(key)
        if offset < 0 or (length is not None and length < 0):
            raise ValueError("offset and length must not be negative")
        if length == 0:
            self.stat(key)
            return
        size = self.stat(key).size
        if offset >= size:
            return  # S3 answers 416 here; the contract says "no bytes"
        response = self._call(key, self.client.get_object, self.bucket, key, offset=offset, length=length or 0)
        try:
            while True:
                try:
                    chunk = response.read(chunk_size)
                except (urllib3.exceptions.HTTPError, OSError) as exc:
                    raise StoreUnavailable(f"{key}: {exc}") from exc
                if not chunk:
                    return
                yield chunk
        finally:
            response.close()
            response.release_conn()

    def stat(self, key: str) -> ObjectInfo:
        check_key(key)
        st = self._call(key, self.client.stat_object, self.bucket, key)
        meta = {
            name.lower()[len(_META_PREFIX) :]: value
            for name, value in (st.metadata or {}).items()
            if name.lower().startswith(_META_PREFIX)
        }
        return ObjectInfo(key, st.size or 0, _aware(st.last_modified), meta)

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
            return True
        except ObjectNotFound:
            return False

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        objects = self._call(prefix, self.client.list_objects, self.bucket, prefix=prefix, recursive=True)
        try:
            for obj in objects:
                if obj.is_dir or obj.object_name is None:
                    continue
                yield ObjectInfo(obj.object_name, obj.size or 0, _aware(obj.last_modified), None)
        except S3Error as exc:
            raise StoreUnavailable(f"list {prefix}: {exc.code}") from exc
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise StoreUnavailable(f"list {prefix}: {exc}") from exc

    def delete(self, key: str) -> None:
        check_key(key)
        try:
            self._call(key, self.client.remove_object, self.bucket, key)
        except ObjectNotFound:
            return

    def delete_many(self, keys: Iterable[str]) -> None:
        batch: list[DeleteObject] = []
        for key in keys:
            batch.append(DeleteObject(check_key(key)))
            if len(batch) == _DELETE_BATCH:
                self._delete_batch(batch)
                batch = []
        if batch:
            self._delete_batch(batch)

    def _delete_batch(self, batch: Sequence[DeleteObject]) -> None:
        # remove_objects is lazy: errors only arrive while iterating its result.
        errors = self._call("delete", lambda: list(self.client.remove_objects(self.bucket, batch)))
        failed = [e for e in errors if e.code not in _MISSING]
        if failed:
            raise StoreUnavailable(f"delete failed for {len(failed)} objects: {failed[0].code} {failed[0].name}")

    def put_retained(
        self, key: str, data: bytes, retain_until: datetime, content_type: str = "application/json"
    ) -> ObjectInfo:
        check_key(key)
        headers = {
            "Content-Type": content_type,
            # S3 wants a checksum of any upload that carries a retention; the SDK's put_object has
            # no way to add Content-MD5, its PutObject call (minio 7.2, pinned) takes the headers.
            "Content-MD5": base64.b64encode(hashlib.md5(data).digest()).decode(),
            "x-amz-object-lock-mode": _LOCK_MODE,
            "x-amz-object-lock-retain-until-date": to_iso8601utc(retain_until.astimezone(UTC)) or "",
        }
        try:
            self._call(key, self.client._put_object, self.bucket, key, data, headers)
        except StoreUnavailable as exc:
            if any(code in str(exc) for code in _NO_LOCK):
                raise ObjectLockMissing(f"bucket {self.bucket} has no object lock: {exc}") from exc
            raise
        return self.stat(key)

    def _versions(self, prefix: str, start_after: str = "") -> Iterator[Any]:
        objects = self._call(
            prefix,
            self.client.list_objects,
            self.bucket,
            prefix=prefix,
            recursive=True,
            include_version=True,
            start_after=start_after or None,
        )
        try:
            for obj in objects:
                if obj.is_dir or obj.object_name is None or obj.is_delete_marker:
                    continue
                yield obj
        except S3Error as exc:
            raise StoreUnavailable(f"list versions {prefix}: {exc.code}") from exc
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise StoreUnavailable(f"list versions {prefix}: {exc}") from exc

    def retained_keys(self, prefix: str = "", start_after: str = "") -> Iterator[str]:
        # Versions come key by key (newest first within a key): one pass, each key once.
        last = None
        for obj in self._versions(prefix, start_after):
            if obj.object_name != last and obj.object_name > start_after:
                last = obj.object_name
                yield obj.object_name

    def get_retained(self, key: str) -> builtins.list[bytes]:
        check_key(key)
        found: builtins.list[bytes] = []
        for obj in self._versions(key):
            if obj.object_name != key:
                continue
            response = self._call(key, self.client.get_object, self.bucket, key, version_id=obj.version_id)
            try:
                # Only versions under a lock count: one put without retention is anyone's word.
                if response.headers.get("x-amz-object-lock-mode"):
                    found.append(response.read())
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise StoreUnavailable(f"{key}: {exc}") from exc
            finally:
                response.close()
                response.release_conn()
        # S3 lists a key's versions newest first (times are too coarse to sort on).
        return found[::-1]

    def get_expiry_rules(self) -> builtins.list[ExpiryRule]:
        config = self._call(f"{self.bucket} lifecycle", self.client.get_bucket_lifecycle, self.bucket)
        rules: builtins.list[ExpiryRule] = []
        for rule in config.rules if config else []:
            prefix = ""
            if rule.rule_filter is not None:
                prefix = rule.rule_filter.prefix or ""
            days = rule.expiration.days if rule.expiration is not None and rule.expiration.days else 0
            # A rule we did not write (a date, tags, transitions) reads back with days=0, so a
            # caller comparing against what it wants sees a difference and rewrites it.
            rules.append(ExpiryRule(rule.rule_id or "", prefix, days, rule.status == ENABLED))
        return rules

    def set_expiry_rules(self, rules: Sequence[ExpiryRule]) -> None:
        checked = [check_expiry_rule(rule) for rule in rules]
        if not checked:
            self._call(f"{self.bucket} lifecycle", self.client.delete_bucket_lifecycle, self.bucket)
            return
        config = LifecycleConfig(
            [
                Rule(
                    ENABLED if rule.enabled else DISABLED,
                    rule_filter=Filter(prefix=rule.prefix),
                    rule_id=rule.id,
                    expiration=Expiration(days=rule.days),
                )
                for rule in checked
            ]
        )
        self._call(f"{self.bucket} lifecycle", self.client.set_bucket_lifecycle, self.bucket, config)


def _aware(moment: datetime | None) -> datetime:
    if moment is None:
        return datetime.now(UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
