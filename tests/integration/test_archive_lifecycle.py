"""The recordings bucket's lifecycle rule on the S3 server: set at start-up, read back, repaired
when someone changes or removes it, never above the legal 30 days + 1."""

from services.archive import lifecycle
from services.common.objectstore import ExpiryRule
from tests.support.archive import s3_store
from tests.support.servers import S3Server


def test_rule_is_set_read_back_and_repaired(s3: S3Server) -> None:
    store = s3_store(s3)
    store.ensure_bucket()
    assert store.get_expiry_rules() == []
    assert lifecycle.ensure_rule(store, 15) is True
    assert store.get_expiry_rules() == [ExpiryRule("csu-recordings-retention", "cam/", 16)]
    assert lifecycle.ensure_rule(store, 15) is False  # checked: nothing to do

    # Someone lengthens it: repaired.
    store.set_expiry_rules([ExpiryRule("csu-recordings-retention", "cam/", 400)])
    assert lifecycle.ensure_rule(store, 15) is True
    assert store.get_expiry_rules() == [ExpiryRule("csu-recordings-retention", "cam/", 16)]
    # Someone disables it and adds another: repaired to exactly ours.
    store.set_expiry_rules(
        [ExpiryRule("csu-recordings-retention", "cam/", 16, enabled=False), ExpiryRule("x", "other/", 3)]
    )
    assert lifecycle.ensure_rule(store, 15) is True
    assert store.get_expiry_rules() == [ExpiryRule("csu-recordings-retention", "cam/", 16)]
    # Someone removes it: put back.
    store.set_expiry_rules([])
    assert lifecycle.ensure_rule(store, 15) is True
    assert len(store.get_expiry_rules()) == 1


def test_rule_follows_the_longest_retention_within_the_legal_maximum(s3: S3Server) -> None:
    store = s3_store(s3)
    store.ensure_bucket()
    lifecycle.ensure_rule(store, 30)
    assert store.get_expiry_rules()[0].days == 31
    lifecycle.ensure_rule(store, 90)  # a value that slipped through is clamped
    assert store.get_expiry_rules()[0].days == 31
