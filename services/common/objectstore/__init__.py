"""Object storage behind one interface, with two implementations that behave the same.

- `S3Store` speaks S3 through the minio SDK (MinIO in production, any S3 API server in tests).
- `LocalStore` keeps objects in a local directory (the embedded default of `make run`).

The same contract tests run against both. The interface is synchronous, like the minio SDK;
asyncio code calls it through `asyncio.to_thread`.
"""

from services.common.objectstore.base import (
    ExpiryRule,
    InvalidKey,
    ObjectInfo,
    ObjectLockMissing,
    ObjectNotFound,
    ObjectStore,
    StoreUnavailable,
    check_key,
    check_metadata,
)
from services.common.objectstore.factory import make_store

__all__ = [
    "ExpiryRule",
    "InvalidKey",
    "ObjectInfo",
    "ObjectLockMissing",
    "ObjectNotFound",
    "ObjectStore",
    "StoreUnavailable",
    "check_key",
    "check_metadata",
    "make_store",
]
