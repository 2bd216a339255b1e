"""The object-store contract, run against both implementations: a local directory and S3."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.common.objectstore import ExpiryRule, InvalidKey, ObjectNotFound, ObjectStore, StoreUnavailable
from services.common.objectstore.local import LocalStore
from services.common.objectstore.s3 import S3Store
from tests.support.servers import S3Server, free_port, unique


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    bucket = unique("ct-")
    if request.param == "local":
        instance: ObjectStore = LocalStore(tmp_path / "objects", bucket)
    else:
        s3: S3Server = request.getfixturevalue("s3")
        instance = S3Store(s3.endpoint, s3.access_key, s3.secret_key, "us-east-1", bucket)
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


def test_unreachable_s3_raises_store_unavailable() -> None:
    dead = S3Store(f"http://127.0.0.1:{free_port()}", "a", "b", "us-east-1", "nobucket")
    assert dead.ping() is False
    with pytest.raises(StoreUnavailable):
        dead.put("k", b"x")
    with pytest.raises(StoreUnavailable):
        list(dead.list())
    with pytest.raises(StoreUnavailable):
        dead.get_expiry_rules()
