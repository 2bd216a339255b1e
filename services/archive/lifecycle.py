"""The recordings bucket's lifecycle rule: the backstop that expires segments even when every
service is down (retention + 1 day, never more than 30 + 1).

The rule is set at start-up and checked again every hour: if someone removed or changed it, it is
put back. One rule covers every camera, so it uses the longest retention among them; the sweeper
deletes each camera's segments to the minute well before it.

On S3 (MinIO) the server applies the rule. The local-directory store only records it: the sweeper
applies it there (see `apply_expiry_rules`), so `make run` keeps the same guarantee.
"""

from datetime import datetime, timedelta

from services.common.log import get_logger
from services.common.objectstore import ExpiryRule, ObjectStore
from services.common.settings import LEGAL_MAX_RETENTION_DAYS

log = get_logger(__name__)
RULE_ID = "csu-recordings-retention"
PREFIX = "cam/"


def wanted_rule(longest_retention_days: int) -> ExpiryRule:
    days = min(longest_retention_days, LEGAL_MAX_RETENTION_DAYS) + 1
    return ExpiryRule(RULE_ID, PREFIX, days)


def ensure_rule(store: ObjectStore, longest_retention_days: int) -> bool:
    """Make the bucket's rules exactly the wanted one; True when they had to be (re)written."""
    wanted = [wanted_rule(longest_retention_days)]
    current = store.get_expiry_rules()
    if current == wanted:
        return False
    store.set_expiry_rules(wanted)
    if current:
        log.warning("lifecycle rule repaired", bucket=store.bucket, found=repr(current), wanted=repr(wanted))
    else:
        log.info("lifecycle rule set", bucket=store.bucket, days=wanted[0].days)
    return True


def apply_expiry_rules(store: ObjectStore, now: datetime, batch: int = 1000) -> int:
    """Delete what the bucket's rules expire, for a store without its own lifecycle engine.

    Like S3, by the object's write time (not the capture time in its key). Returns the count.
    """
    if store.expires_by_itself:
        return 0
    deleted = 0
    for rule in store.get_expiry_rules():
        if not rule.enabled or rule.days < 1:
            continue
        limit = now - timedelta(days=rule.days)
        expired = [info.key for info in store.list(rule.prefix) if info.modified < limit]
        for i in range(0, len(expired), batch):
            store.delete_many(expired[i : i + batch])
        deleted += len(expired)
        if expired:
            log.info("expired objects deleted by the lifecycle backstop", bucket=store.bucket, count=len(expired))
    return deleted
