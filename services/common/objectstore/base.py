"""The object-store contract shared by every implementation."""

import builtins
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

# Keys are paths of simple segments; no segment may start with "." so "..", hidden files and the
# local store's own bookkeeping folders can never be addressed.
_SEGMENT = re.compile(r"^[A-Za-z0-9_=+-][A-Za-z0-9._=+-]*$")
# S3 lower-cases user metadata names and only carries ASCII; both stores accept exactly this.
_META_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
MAX_KEY_LENGTH = 512
CHUNK_SIZE = 1024 * 1024


class ObjectNotFound(KeyError):
    """The key does not exist in the bucket."""


class StoreUnavailable(RuntimeError):
    """The store could not be reached or failed; nothing was changed by the call."""


class InvalidKey(ValueError):
    """A key or metadata name that the contract does not allow."""


class ObjectLockMissing(StoreUnavailable):
    """A retained object was asked of a bucket made without object lock (it cannot be enabled later)."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    modified: datetime
    # User metadata (names lower-case). `list` does not fetch it (an S3 listing does not carry
    # it): there it is None; `stat` and `put` always return it.
    metadata: dict[str, str] | None = None


@dataclass(frozen=True)
class ExpiryRule:
    """A bucket lifecycle rule: objects under `prefix` expire `days` after they were written.

    S3 (MinIO) applies the rules itself, even while every service is down. The local directory
    has no background engine: it only records the rules; whoever owns the bucket applies them
    (the archive's sweeper does for recordings). `ObjectStore.expires_by_itself` tells which.
    """

    id: str
    prefix: str
    days: int
    enabled: bool = True


def check_expiry_rule(rule: ExpiryRule) -> ExpiryRule:
    if not rule.id or len(rule.id) > 255 or not rule.id.isascii():
        raise InvalidKey(f"invalid lifecycle rule id {rule.id!r}")
    if rule.days < 1:
        raise InvalidKey(f"lifecycle rule {rule.id!r}: days must be at least 1")
    if rule.prefix and not all(_SEGMENT.fullmatch(part) for part in rule.prefix.rstrip("/").split("/")):
        raise InvalidKey(f"lifecycle rule {rule.id!r}: invalid prefix {rule.prefix!r}")
    return rule


def check_key(key: str) -> str:
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidKey(f"object key must be 1-{MAX_KEY_LENGTH} characters")
    if not all(_SEGMENT.fullmatch(part) for part in key.split("/")):
        raise InvalidKey(f"invalid object key {key!r}")
    return key


def check_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    result: dict[str, str] = {}
    for name, value in (metadata or {}).items():
        if not _META_NAME.fullmatch(name):
            raise InvalidKey(f"invalid metadata name {name!r}: lower-case letters, digits and '-'")
        if not value.isascii() or any(ord(c) < 32 for c in value):
            raise InvalidKey(f"metadata {name!r} must be printable ASCII")
        result[name] = value
    return result


class ObjectStore(Protocol):
    bucket: str
    # True when the store deletes expired objects itself (S3 lifecycle); False when the expiry
    # rules are only recorded and the bucket's owner must apply them (local directory).
    expires_by_itself: bool

    def ensure_bucket(self, object_lock: bool = False) -> None:
        """Create the bucket if it does not exist; with object_lock, a bucket whose objects can be
        retained (write once, read many). An existing bucket made without object lock cannot get it
        afterwards: asking for it raises ObjectLockMissing rather than pretending."""
        ...

    def ping(self) -> bool:
        """True when the bucket can be reached now."""
        ...

    def put(
        self,
        key: str,
        data: bytes,
        metadata: Mapping[str, str] | None = None,
        content_type: str = "application/octet-stream",
    ) -> ObjectInfo:
        """Store data under key (replacing any object there); atomic: readers see old or new."""
        ...

    def put_file(
        self,
        key: str,
        path: Path,
        metadata: Mapping[str, str] | None = None,
        content_type: str = "application/octet-stream",
    ) -> ObjectInfo:
        """Like put, streaming the content from a local file (large objects, the spool)."""
        ...

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        """The object's bytes, or the [offset, offset+length) part of them."""
        ...

    def iter_chunks(
        self, key: str, offset: int = 0, length: int | None = None, chunk_size: int = CHUNK_SIZE
    ) -> Iterator[bytes]:
        """Like get, in chunks, so large objects never sit whole in memory."""
        ...

    def stat(self, key: str) -> ObjectInfo: ...

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with prefix, in key order."""
        ...

    def delete(self, key: str) -> None:
        """Remove the object; deleting a missing key is not an error."""
        ...

    def delete_many(self, keys: Iterable[str]) -> None:
        """Remove many objects in as few requests as the store allows."""
        ...

    def put_retained(
        self, key: str, data: bytes, retain_until: datetime, content_type: str = "application/json"
    ) -> ObjectInfo:
        """Store data under key, retained until retain_until: no one may delete or change this
        version before then (S3: object lock in compliance mode, which not even the bucket's owner
        can lift; the local directory can only keep a copy out of reach of this interface, see
        local.py). A later put or delete of the key hides it from get/list but never removes it:
        `retained_keys` and `get_retained` still find it. ObjectLockMissing in a bucket made
        without object lock."""
        ...

    def retained_keys(self, prefix: str = "", start_after: str = "") -> Iterator[str]:
        """Every key under prefix (after start_after) that holds a retained version, even one hidden
        by a later delete or overwrite, in key order, each once. S3 also lists keys whose versions
        were written without retention (a versioned bucket keeps them): `get_retained` tells."""
        ...

    def get_retained(self, key: str) -> builtins.list[bytes]:
        """The bytes of every retained version of key, oldest first ([] when it has none)."""
        ...

    def get_expiry_rules(self) -> builtins.list[ExpiryRule]:
        """The bucket's lifecycle rules (empty when it has none), in the order they were set."""
        ...

    def set_expiry_rules(self, rules: Sequence[ExpiryRule]) -> None:
        """Replace every lifecycle rule of the bucket with these (none: remove the configuration)."""
        ...
