"""Objects as files in a local directory: the embedded default.

Layout under root/<bucket>/:
    <key>              the object's bytes
    .meta/<key>.json   its user metadata and content type
    .tmp/              files being written; renamed into place so readers never see half an object
    .lifecycle.json    the bucket's expiry rules
    .object-lock       present when the bucket was made with object lock
    .retained/<key>@<n>  each retained version's bytes (read-only files)

Unlike S3, nothing here deletes expired objects by itself: the expiry rules are recorded and read
back like S3's lifecycle configuration, and the bucket's owner applies them
(`expires_by_itself` is False; the archive's sweeper does it for the recordings bucket).

Writes are fsynced before the rename, so an object that `put` returned survives a power cut.

Object lock cannot truly exist here: whoever can write the folder (its owner, root, a backup
tool) can delete a retained version, and nothing on one machine could stop them. What this store
does is behave like S3 through the interface — a retained version stays readable through
`get_retained` whatever later puts and deletes do to its key, and it is kept as a read-only file
apart from the current object — so the code above it is the same and the contract tests prove it.
The guarantee against someone with access to the machine needs S3 (MinIO) with object lock, the
production store: the README's security section says so.
"""

import builtins
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

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

_LOCK_MARKER = ".object-lock"
_RETAINED = ".retained"


class LocalStore:
    # No background engine: see the module's docstring.
    expires_by_itself = False

    def __init__(self, root: Path, bucket: str) -> None:
        self.root = Path(root)
        self.bucket = check_key(bucket)
        self._dir = self.root / bucket

    def ensure_bucket(self, object_lock: bool = False) -> None:
        new = not self._dir.is_dir()
        for folder in (self._dir, self._dir / ".meta", self._dir / ".tmp"):
            folder.mkdir(parents=True, exist_ok=True)
        if object_lock:
            if new:
                (self._dir / _LOCK_MARKER).touch()
            elif not self._locked():
                raise ObjectLockMissing(
                    f"bucket {self.bucket} exists without object lock, which S3 cannot add afterwards: "
                    "create it anew with object lock (or name another bucket)"
                )

    def _locked(self) -> bool:
        return (self._dir / _LOCK_MARKER).is_file()

    def ping(self) -> bool:
        return self._dir.is_dir() and os.access(self._dir, os.W_OK)

    def _path(self, key: str) -> Path:
        return self._dir / check_key(key)

    def _meta_path(self, key: str) -> Path:
        return self._dir / ".meta" / f"{check_key(key)}.json"

    def _write_atomic(self, target: Path, data: bytes | Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self._dir / ".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                if isinstance(data, Path):
                    with data.open("rb") as source:
                        shutil.copyfileobj(source, f, CHUNK_SIZE)
                else:
                    f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def put(
        self,
        key: str,
        data: bytes,
        metadata: Mapping[str, str] | None = None,
        content_type: str = "application/octet-stream",
    ) -> ObjectInfo:
        return self._put(key, data, metadata, content_type)

    def put_file(
        self,
        key: str,
        path: Path,
        metadata: Mapping[str, str] | None = None,
        content_type: str = "application/octet-stream",
    ) -> ObjectInfo:
        return self._put(key, Path(path), metadata, content_type)

    def _put(self, key: str, data: bytes | Path, metadata: Mapping[str, str] | None, content_type: str) -> ObjectInfo:
        meta = check_metadata(metadata)
        path = self._path(key)
        if not self._dir.is_dir():
            raise StoreUnavailable(f"bucket folder {self._dir} does not exist")
        try:
            # Metadata first: an object is visible only once its bytes are in place, and then its
            # metadata is already there.
            self._write_atomic(
                self._meta_path(key),
                json.dumps({"metadata": meta, "content_type": content_type}).encode(),
            )
            self._write_atomic(path, data)
        except OSError as exc:
            raise StoreUnavailable(f"cannot write {key}: {exc}") from exc
        return self.stat(key)

    def _open(self, key: str):
        try:
            return self._path(key).open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise ObjectNotFound(key) from exc
        except OSError as exc:
            raise StoreUnavailable(f"cannot read {key}: {exc}") from exc

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        return b"".join(self.iter_chunks(key, offset, length))

    def iter_chunks(
        self, key: str, offset: int = 0, length: int | None = None, chunk_size: int = CHUNK_SIZE
    ) -> Iterator[bytes]:
        if offset < 0 or (length is not None and length < 0):
            raise ValueError("offset and length must not be negative")
        f = self._open(key)
        with f:
            f.seek(offset)
            remaining = length
            while remaining is None or remaining > 0:
                chunk = f.read(chunk_size if remaining is None else min(chunk_size, remaining))
                if not chunk:
                    return
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk

    def stat(self, key: str) -> ObjectInfo:
        path = self._path(key)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise ObjectNotFound(key) from exc
        if not path.is_file():
            raise ObjectNotFound(key)
        try:
            meta = json.loads(self._meta_path(key).read_text())["metadata"]
        except FileNotFoundError:
            meta = {}
        return ObjectInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC), meta)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        if not self._dir.is_dir():
            raise StoreUnavailable(f"bucket folder {self._dir} does not exist")
        # Walk only the folder the prefix names, then filter on the rest of it.
        base = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = self._dir / base if base else self._dir
        if not start.is_dir():
            return
        keys: list[tuple[str, os.stat_result]] = []
        for folder, dirs, files in os.walk(start):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in files:
                if name.startswith("."):
                    continue
                full = Path(folder) / name
                key = full.relative_to(self._dir).as_posix()
                if key.startswith(prefix):
                    try:
                        keys.append((key, full.stat()))
                    except FileNotFoundError:
                        continue  # deleted while we walked
        for key, st in sorted(keys):
            yield ObjectInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC), None)

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
            self._meta_path(key).unlink(missing_ok=True)
        except IsADirectoryError:
            return
        except OSError as exc:
            raise StoreUnavailable(f"cannot delete {key}: {exc}") from exc
        # Drop folders the deletion emptied, up to the bucket, so old hours do not pile up.
        for folder in (path.parent, self._meta_path(key).parent):
            while folder not in (self._dir, self._dir / ".meta"):
                try:
                    folder.rmdir()
                except OSError:
                    break
                folder = folder.parent

    def delete_many(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.delete(key)

    def put_retained(
        self, key: str, data: bytes, retain_until: datetime, content_type: str = "application/json"
    ) -> ObjectInfo:
        check_key(key)
        if not self._locked():
            raise ObjectLockMissing(f"bucket {self.bucket} has no object lock")
        folder = self._dir / _RETAINED / key
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            # A version number no earlier version has: versions sort as they were written.
            version = f"{time.time_ns():020d}"
            target = folder.with_name(f"{folder.name}@{version}")
            self._write_atomic(target, data)
            target.chmod(0o444)
        except OSError as exc:
            raise StoreUnavailable(f"cannot write {key}: {exc}") from exc
        return self._put(key, data, {}, content_type)

    def retained_keys(self, prefix: str = "", start_after: str = "") -> Iterator[str]:
        root = self._dir / _RETAINED
        keys: set[str] = set()
        for folder, _dirs, files in os.walk(root):
            for name in files:
                key, sep, _version = (Path(folder) / name).relative_to(root).as_posix().rpartition("@")
                if sep and key.startswith(prefix) and key > start_after:
                    keys.add(key)
        yield from sorted(keys)

    def get_retained(self, key: str) -> builtins.list[bytes]:
        path = self._dir / _RETAINED / check_key(key)
        if not path.parent.is_dir():
            return []
        try:
            versions = sorted(p for p in path.parent.iterdir() if p.name.rpartition("@")[0] == path.name)
            return [version.read_bytes() for version in versions]
        except OSError as exc:
            raise StoreUnavailable(f"cannot read {key}: {exc}") from exc

    def _lifecycle_path(self) -> Path:
        return self._dir / ".lifecycle.json"

    def get_expiry_rules(self) -> builtins.list[ExpiryRule]:
        if not self._dir.is_dir():
            raise StoreUnavailable(f"bucket folder {self._dir} does not exist")
        try:
            raw = json.loads(self._lifecycle_path().read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise StoreUnavailable(f"cannot read the lifecycle rules of {self.bucket}: {exc}") from exc
        return [ExpiryRule(r["id"], r["prefix"], int(r["days"]), bool(r["enabled"])) for r in raw["rules"]]

    def set_expiry_rules(self, rules: Sequence[ExpiryRule]) -> None:
        checked = [check_expiry_rule(rule) for rule in rules]
        if not self._dir.is_dir():
            raise StoreUnavailable(f"bucket folder {self._dir} does not exist")
        try:
            if not checked:
                self._lifecycle_path().unlink(missing_ok=True)
                return
            document = {
                "rules": [{"id": r.id, "prefix": r.prefix, "days": r.days, "enabled": r.enabled} for r in checked]
            }
            self._write_atomic(self._lifecycle_path(), json.dumps(document).encode())
        except OSError as exc:
            raise StoreUnavailable(f"cannot write the lifecycle rules of {self.bucket}: {exc}") from exc
