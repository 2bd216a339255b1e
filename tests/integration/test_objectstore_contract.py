"""The object-store contract, run against both implementations: a local directory and S3."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.common.objectstore import (
    ExpiryRule,
    InvalidKey,
    ObjectLockMissing,
    ObjectNotFound,
    ObjectStore,
    StoreUnavailable,
)
from services.common.objectstore.local import LocalStore
from services.common.objectstore.s3 import S3Store
from tests.support.servers import S3Server, free_port, unique


def _new_store(request: pytest.FixtureRequest, tmp_path: Path, prefix: str) -> ObjectStore:
    bucket = unique(prefix)
    if request.param == "local":
        return LocalStore(tmp_path / "objects", bucket)
    s3: S3Server = request.getfixturevalue("s3")
    return S3Store(s3.endpoint, s3.access_key, s3.secret_key, "us-east-1", bucket)


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    instance = _new_store(request, tmp_path, "ct-")
    instance.ensure_bucket()
    yield instance
    instance.delete_many(info.key for info in instance.list())


def test_put_get_stat_roundtrip(store: ObjectStore) -> None:
    data = bytes(range(256)) * 1000
    info = store.put("cam/a/2026/11/25/10/x.mp4", data, {"sha256": "abc", "camera-id": "a"}, "video/mp4")
    assert info.size == len(data)
    assert info.metadata == {"sha256": "abc", "camera-id": "a"}
    assert store.get("cam/a/2026/11/25/10/x.mp4") == data
    stat = store.stat("cam/a/2026/11/25/10/x.mp4")
    assert (stat.size, stat.metadata) == (len(data), {"sha256": "abc", "camera-id": "a"})
    assert stat.modified.tzinfo is not None


def test_ranges_and_chunks(store: ObjectStore) -> None:
    data = b"0123456789" * 100
    store.put("k/range", data)
    assert store.get("k/range", 10, 5) == data[10:15]
    assert store.get("k/range", 995) == data[995:]
    assert store.get("k/range", 995, 100) == data[995:]
    assert store.get("k/range", 2000) == b""
    assert b"".join(store.iter_chunks("k/range", 3, 500, chunk_size=7)) == data[3:503]


def test_put_file_streams_from_disk(store: ObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "segment.mp4"
    source.write_bytes(b"\x00\x01" * 300_000)
    info = store.put_file("files/one.mp4", source, {"frames": "42"}, "video/mp4")
    assert info.size == 600_000 and info.metadata == {"frames": "42"}
    assert store.get("files/one.mp4") == source.read_bytes()


def test_overwrite_replaces_bytes_and_metadata(store: ObjectStore) -> None:
    store.put("k/o", b"old", {"v": "1"})
    store.put("k/o", b"newer", {"v": "2"})
    assert store.get("k/o") == b"newer"
    assert store.stat("k/o").metadata == {"v": "2"}


def test_missing_objects(store: ObjectStore) -> None:
    with pytest.raises(ObjectNotFound):
        store.get("nope/x")
    with pytest.raises(ObjectNotFound):
        store.stat("nope/x")
    assert store.exists("nope/x") is False
    store.delete("nope/x")  # deleting what is not there is fine


def test_list_is_recursive_sorted_and_prefix_filtered(store: ObjectStore) -> None:
    keys = ["cam/b/2026/01/01/00/2.mp4", "cam/a/2026/01/01/01/1.mp4", "cam/a/2026/01/01/00/1.mp4", "other/x"]
    for key in keys:
        store.put(key, key.encode())
    assert [i.key for i in store.list("cam/a/")] == sorted(k for k in keys if k.startswith("cam/a/"))
    assert [i.key for i in store.list("cam/")] == sorted(k for k in keys if k.startswith("cam/"))
    assert [i.key for i in store.list("cam/a/2026/01/01/0")] == [
        "cam/a/2026/01/01/00/1.mp4",
        "cam/a/2026/01/01/01/1.mp4",
    ]
    listed = {i.key: i.size for i in store.list()}
    assert listed == {k: len(k) for k in keys}
    assert all(i.metadata is None for i in store.list())


def test_delete_and_delete_many(store: ObjectStore) -> None:
    keys = [f"batch/{i:04d}" for i in range(1203)]  # more than one S3 multi-delete request
    for key in keys[:5]:
        store.put(key, b"x")
    store.delete("batch/0000")
    assert not store.exists("batch/0000")
    store.delete_many(keys)  # includes keys that never existed
    assert list(store.list("batch/")) == []


@pytest.mark.parametrize("key", ["", "/abs", "a//b", "../etc/passwd", "a/../b", "a/.hidden", "a b", "é"])
def test_invalid_keys_are_refused(store: ObjectStore, key: str) -> None:
    with pytest.raises(InvalidKey):
        store.put(key, b"x")


def test_invalid_metadata_is_refused(store: ObjectStore) -> None:
    with pytest.raises(InvalidKey):
        store.put("k/m", b"x", {"Upper": "x"})
    with pytest.raises(InvalidKey):
        store.put("k/m", b"x", {"ok": "caf\u00e9"})
    assert not store.exists("k/m")


def test_expiry_rules_are_set_read_back_replaced_and_removed(store: ObjectStore) -> None:
    assert store.get_expiry_rules() == []
    rules = [ExpiryRule("retention", "cam/", 16), ExpiryRule("scratch", "tmp/", 1, enabled=False)]
    store.set_expiry_rules(rules)
    assert store.get_expiry_rules() == rules
    # Replacing (what a repair does) leaves exactly the new rules.
    store.set_expiry_rules([ExpiryRule("retention", "cam/", 31)])
    assert store.get_expiry_rules() == [ExpiryRule("retention", "cam/", 31)]
    # The rules are not objects: listings never show them.
    assert list(store.list()) == []
    store.set_expiry_rules([])
    assert store.get_expiry_rules() == []
    assert isinstance(store.expires_by_itself, bool)


@pytest.mark.parametrize(
    "rule",
    [ExpiryRule("", "cam/", 1), ExpiryRule("r", "cam/", 0), ExpiryRule("r", "../x/", 3), ExpiryRule("r", "a b/", 3)],
)
def test_invalid_expiry_rules_are_refused(store: ObjectStore, rule: ExpiryRule) -> None:
    store.set_expiry_rules([ExpiryRule("kept", "cam/", 5)])
    with pytest.raises(InvalidKey):
        store.set_expiry_rules([rule])
    assert store.get_expiry_rules() == [ExpiryRule("kept", "cam/", 5)]


@pytest.fixture(params=["local", "s3"])
def locked(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    """A bucket made with object lock (what the anchors of the hash chains are written to)."""
    instance = _new_store(request, tmp_path, "lk-")
    instance.ensure_bucket(object_lock=True)
    instance.ensure_bucket(object_lock=True)  # again at every start: nothing changes
    return instance


def test_a_retained_version_outlives_overwrites_and_deletes(locked: ObjectStore) -> None:
    until = datetime.now(UTC) + timedelta(days=2)
    info = locked.put_retained("audit/00000000000000000100-aa.json", b'{"seq": 100}', until)
    assert info.size == 12 and locked.get("audit/00000000000000000100-aa.json") == b'{"seq": 100}'
    locked.put_retained("audit/00000000000000000200-bb.json", b'{"seq": 200}', until)
    locked.put_retained("register/00000000000000000001-cc.json", b"{}", until)
    assert list(locked.retained_keys("audit/")) == [
        "audit/00000000000000000100-aa.json",
        "audit/00000000000000000200-bb.json",
    ]
    assert list(locked.retained_keys("audit/", start_after="audit/00000000000000000100-aa.json")) == [
        "audit/00000000000000000200-bb.json"
    ]
    # Someone with write access to the bucket overwrites one and deletes the other: the current
    # objects change, the retained versions do not, and they are still found.
    locked.put("audit/00000000000000000100-aa.json", b"forged")
    locked.delete("audit/00000000000000000200-bb.json")
    locked.delete_many(["audit/00000000000000000100-aa.json"])
    assert not locked.exists("audit/00000000000000000200-bb.json")
    assert [i.key for i in locked.list("audit/")] == []
    assert list(locked.retained_keys("audit/")) == [
        "audit/00000000000000000100-aa.json",
        "audit/00000000000000000200-bb.json",
    ]
    assert locked.get_retained("audit/00000000000000000100-aa.json") == [b'{"seq": 100}']
    assert locked.get_retained("audit/00000000000000000200-bb.json") == [b'{"seq": 200}']
    # A second retained version of a key is kept too, after the first.
    locked.put_retained("audit/00000000000000000100-aa.json", b'{"seq": 100, "again": true}', until)
    assert locked.get_retained("audit/00000000000000000100-aa.json") == [
        b'{"seq": 100}',
        b'{"seq": 100, "again": true}',
    ]
    assert locked.get_retained("audit/00000000000000000300-dd.json") == []
    with pytest.raises(InvalidKey):
        locked.put_retained("../escape", b"x", until)


def test_retention_needs_a_bucket_made_with_object_lock(store: ObjectStore) -> None:
    until = datetime.now(UTC) + timedelta(days=1)
    with pytest.raises(ObjectLockMissing):
        store.put_retained("audit/1.json", b"{}", until)
    assert list(store.retained_keys()) == []
    # It cannot be added to a bucket that exists without it (S3 refuses): said, never pretended.
    with pytest.raises(ObjectLockMissing):
        store.ensure_bucket(object_lock=True)


def test_s3_refuses_to_delete_a_retained_version_even_to_the_bucket_owner(s3: S3Server) -> None:
    """What the local directory cannot do (local.py says so): compliance mode holds on S3."""
    store = S3Store(s3.endpoint, s3.access_key, s3.secret_key, "us-east-1", unique("lk-"))
    store.ensure_bucket(object_lock=True)
    store.put_retained("audit/1.json", b"{}", datetime.now(UTC) + timedelta(days=1))
    [version] = [
        v
        for v in store.client.list_objects(store.bucket, prefix="audit/", include_version=True)
        if not v.is_delete_marker
    ]
    with pytest.raises(Exception, match="AccessDenied"):
        store.client.remove_object(store.bucket, "audit/1.json", version_id=version.version_id)
    assert store.get_retained("audit/1.json") == [b"{}"]


def test_unreachable_s3_raises_store_unavailable() -> None:
    dead = S3Store(f"http://127.0.0.1:{free_port()}", "a", "b", "us-east-1", "nobucket")
    assert dead.ping() is False
    with pytest.raises(StoreUnavailable):
        dead.put("k", b"x")
    with pytest.raises(StoreUnavailable):
        list(dead.list())
    with pytest.raises(StoreUnavailable):
        dead.get_expiry_rules()
