"""What someone with write access to the database (or to an export file) does to the hash chains,
for the tests that prove it is found (no tests here). Every attack takes the writer's own lock first,
as a careful attacker would, so the running services cannot interleave with it."""

from pathlib import Path

from sqlalchemy import Engine, text

from services.gateway.identity import audit_log


def rewrite_audit_from(engine: Engine, seq: int, actor: str) -> None:
    """The probe's attack (issue 23): change one entry's actor, recompute every link after it,
    update the head, and delete the checkpoints in between — no key needed."""
    with engine.begin() as conn:
        conn.execute(text("UPDATE gateway_audit_head SET seq = seq WHERE id = 1"))  # the writer's lock
        prev = conn.execute(text("SELECT prev_hash FROM gateway_audit WHERE seq = :s"), {"s": seq}).scalar_one()
        last = conn.execute(text("SELECT seq FROM gateway_audit_head WHERE id = 1")).scalar_one()
        for entry in audit_log.search(engine, after_seq=seq - 1, limit=last - seq + 1):
            if entry.seq == seq:
                entry.actor = actor
            entry.prev_hash = prev
            prev = audit_log.entry_hash(prev, entry)
            conn.execute(
                text("UPDATE gateway_audit SET actor = :a, prev_hash = :p, entry_hash = :h WHERE seq = :s"),
                {"a": entry.actor, "p": entry.prev_hash, "h": prev, "s": entry.seq},
            )
        conn.execute(text("UPDATE gateway_audit_head SET entry_hash = :h WHERE id = 1"), {"h": prev})
        conn.execute(text("DELETE FROM gateway_audit_checkpoints WHERE seq >= :s"), {"s": seq})


def truncate_audit(engine: Engine, cut: int) -> None:
    """Delete every entry after `cut` and their checkpoints, and point the head back at `cut`."""
    with engine.begin() as conn:
        conn.execute(text("UPDATE gateway_audit_head SET seq = seq WHERE id = 1"))
        conn.execute(text("DELETE FROM gateway_audit WHERE seq > :c"), {"c": cut})
        conn.execute(text("DELETE FROM gateway_audit_checkpoints WHERE seq > :c"), {"c": cut})
        head = conn.execute(text("SELECT entry_hash FROM gateway_audit WHERE seq = :c"), {"c": cut}).scalar_one()
        conn.execute(
            text("UPDATE gateway_audit_head SET seq = :c, entry_hash = :h WHERE id = 1"), {"c": cut, "h": head}
        )


def cut_register(engine: Engine, seq: int) -> None:
    """The register cut short: its entries after `seq` and their checkpoints deleted, the head back."""
    with engine.begin() as conn:
        conn.execute(text("UPDATE requisition_register_head SET seq = seq WHERE id = 1"))
        conn.execute(text("DELETE FROM requisition_register WHERE seq > :s"), {"s": seq})
        # (a version without checkpoints has no such table: nothing to delete there)
        if conn.dialect.has_table(conn, "requisition_register_checkpoints"):
            conn.execute(text("DELETE FROM requisition_register_checkpoints WHERE seq > :s"), {"s": seq})
        last = conn.execute(text("SELECT entry_hash FROM requisition_register WHERE seq = :s"), {"s": seq}).scalar()
        conn.execute(
            text("UPDATE requisition_register_head SET seq = :s, entry_hash = :h WHERE id = 1"), {"s": seq, "h": last}
        )


def rewrite_export(source: Path, target: Path, fmt: str, seq: int) -> None:
    """The same rewrite done to an export file: one actor changed, the links recomputed from there,
    the checkpoints from there dropped (no key to sign them again)."""
    from services.gateway.identity import audit_export

    export = audit_export.read(source)
    prev = ""
    for readings in export.entries:
        entry = readings[0]
        if entry.seq == seq:
            entry.actor = "someone-else"
        if entry.seq >= seq:
            entry.prev_hash = prev
            entry.entry_hash = audit_log.entry_hash(prev, entry)
        prev = entry.entry_hash
    rows = [
        audit_export.Row(r[0], export.checkpoints.get(r[0].seq) if r[0].seq < seq else None) for r in export.entries
    ]
    writer = audit_export.CsvWriter() if fmt == "csv" else audit_export.JsonWriter()
    plan = audit_export.Plan({}, rows[0].entry.seq - 1, rows[-1].entry.seq, True, export.before, 0)
    target.write_text(writer.header() + writer.rows(rows, export.before) + writer.end(plan, []), encoding="utf-8")
