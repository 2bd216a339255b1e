"""Mask governance on a real database: versions, four-eyes approval, catalogue import, reports,
and the refusals of bad polygons."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.common import db
from services.common.clock import ManualClock
from services.common.refusals import Refusal
from services.common.settings import Settings
from services.masking.main import catalogue_masks
from services.masking.store import (
    APPROVED,
    DISCARDED,
    DRAFT,
    SUPERSEDED,
    CatalogueMasks,
    MaskStore,
    mask_set_of,
)
from services.masking.validation import InvalidMask, check_polygons

SQUARE = [(0.1, 0.1), (0.4, 0.1), (0.4, 0.4), (0.1, 0.4)]


@pytest.fixture
def store(database_url: str, tmp_path: Path) -> MaskStore:
    settings = Settings(database_url=database_url, data_dir=tmp_path)  # type: ignore[call-arg]
    engine = db.make_engine(settings)
    db.migrate("masking", engine)
    return MaskStore(engine, ManualClock(datetime(2026, 11, 25, 10, tzinfo=UTC)))


def test_versions_four_eyes_and_supersession(store: MaskStore) -> None:
    assert store.import_catalogue([CatalogueMasks("cam-a", "image", [SQUARE])]) == 1
    assert store.import_catalogue([CatalogueMasks("cam-a", "image", [])]) == 0  # never twice
    v1 = store.approved("cam-a")
    assert v1 is not None and (v1.version, v1.origin, v1.author) == (1, "catalogue", "catalogue")
    assert mask_set_of(v1).version == "v1"

    draft = store.create("cam-a", "image", [SQUARE, [(0.5, 0.5), (0.9, 0.5), (0.7, 0.9)]], "alice", "add a window")
    assert (draft.version, draft.status) == (2, DRAFT)
    with pytest.raises(Refusal, match="four-eyes"):
        store.approve("cam-a", 2, "alice")
    assert store.approved("cam-a").version == 1  # nothing changed

    # Whoever edits a draft becomes its author: bob edits, so bob may not approve, alice may.
    store.update_draft("cam-a", 2, "image", [SQUARE], "bob", "bob's correction")
    with pytest.raises(Refusal, match="four-eyes"):
        store.approve("cam-a", 2, "bob")
    approved, superseded = store.approve("cam-a", 2, "alice")
    assert (approved.status, approved.approver, approved.author) == (APPROVED, "alice", "bob")
    assert superseded is not None and superseded.version == 1
    assert [(r.version, r.status) for r in store.versions("cam-a")] == [(1, SUPERSEDED), (2, APPROVED)]

    with pytest.raises(Refusal, match="only drafts"):
        store.update_draft("cam-a", 2, "image", [SQUARE], "carol")
    with pytest.raises(Refusal, match="only drafts"):
        store.approve("cam-a", 1, "carol")
    with pytest.raises(Refusal, match="no mask set version 9"):
        store.approve("cam-a", 9, "carol")

    v3 = store.create("cam-a", "image", [SQUARE], "carol")
    assert store.discard("cam-a", v3.version, "carol").status == DISCARDED
    assert store.approved("cam-a").version == 2


def test_reports_are_tracked_until_closed(store: MaskStore) -> None:
    report = store.report("cam-b", "olivia", "the 3rd floor window is visible", "segment s1 @ 10:02:03", "v1")
    assert report.status == "open"
    assert [r.id for r in store.reports("cam-b", "open")] == [report.id]
    closed = store.close_report(report.id, "sam", "mask v2 covers it")
    assert (closed.status, closed.closed_by) == ("closed", "sam")
    assert store.reports("cam-b", "open") == []
    with pytest.raises(Refusal, match="already closed"):
        store.close_report(report.id, "sam", "again")


@pytest.mark.parametrize(
    ("polygons", "space", "message"),
    [
        ([[(0.1, 0.1), (0.5, 0.5), (0.5, 0.1), (0.1, 0.5)]], "image", "not a simple polygon"),  # a bow tie
        ([[(0.1, 0.1), (0.2, 0.2), (0.3, 0.3)]], "image", "degenerate"),
        ([[(0.1, 0.1), (0.1, 0.1), (0.1, 0.1)]], "image", "degenerate"),
        ([[(0.1, 0.1), (1.2, 0.1), (0.5, 0.5)]], "image", "outside the normalised image"),
        ([[(-0.1, 0.1), (0.2, 0.1), (0.5, 0.5)]], "image", "outside the normalised image"),
        ([[(0.1, 0.1), (0.2, 0.1)]], "image", "at least 3 points"),
        ([[(-0.9, 0.1), (0.9, 0.1), (0.0, 0.5)]], "ptz", "half the pan range"),
        ([[(0.1, 0.1), (float("nan"), 0.1), (0.5, 0.5)]], "image", "finite"),
        ([SQUARE], "fisheye", "unknown coordinate space"),
    ],
)
def test_bad_polygons_are_refused_with_a_clear_message(polygons, space: str, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidMask, match=message):
        check_polygons(polygons, space)


def test_catalogue_masks_of_a_ptz_camera_are_converted_to_pan_tilt(tmp_path: Path) -> None:
    cameras = tmp_path / "cameras.json"
    window = [[0.4, 0.4], [0.6, 0.4], [0.6, 0.6], [0.4, 0.6]]
    cameras.write_text(
        json.dumps(
            [
                {"id": "fixed", "name": "f", "source": "demo://plaza", "masks": [window]},
                {"id": "dome", "name": "d", "source": "simptz://dome", "ptz_driver": "simulated", "masks": [window]},
            ]
        )
    )
    masks = {m.camera_id: m for m in catalogue_masks(Settings(cameras_file=cameras))}  # type: ignore[call-arg]
    assert masks["fixed"].space == "image" and masks["fixed"].polygons == [[tuple(p) for p in window]]
    assert masks["dome"].space == "ptz"
    # The centre of the home view is pan/tilt (0, 0), through the default optics (no calibration yet).
    xs = [p[0] for p in masks["dome"].polygons[0]]
    ys = [p[1] for p in masks["dome"].polygons[0]]
    assert min(xs) < 0 < max(xs) and min(ys) < 0 < max(ys)


def test_a_statement_is_in_force_until_withdrawn_and_only_with_its_own_signature(
    store: MaskStore, tmp_path: Path
) -> None:
    import uuid

    from services.common.signing import Signer
    from services.masking.models import StatementRow
    from services.masking.store import statement_in_force

    for name in ("signing.pem", "other.pem"):
        Signer.generate(tmp_path / name)
    signer, other = Signer.from_file(tmp_path / "signing.pem"), Signer.from_file(tmp_path / "other.pem")
    data = json.dumps({"camera_id": "cam-s", "supervisor": "sup", "text": "no home in view", "signed_us": 1})
    row = StatementRow(
        id=uuid.uuid4().hex, camera_id="cam-s", supervisor="sup", text="no home in view", signed_us=1,
        statement=data, signature=signer.sign(data.encode()), public_key_pem=signer.public_pem(), recorded_by="sup",
    )  # fmt: skip
    store.record_statement(row)
    assert statement_in_force(store.statement("cam-s"), signer.public_pem())
    assert not statement_in_force(store.statement("cam-s"), other.public_pem())  # another deployment's key
    forged = store.statement("cam-s")
    forged.statement = forged.statement.replace("no home", "a home")  # a row edited by hand
    assert not statement_in_force(forged, signer.public_pem())
    withdrawn = store.withdraw_statement("cam-s", "mask-admin")
    assert withdrawn.withdrawn_by == "mask-admin" and withdrawn.withdrawn_us is not None
    assert not statement_in_force(store.statement("cam-s"), signer.public_pem())
    assert store.statements_for(["cam-s", "cam-x"]).keys() == {"cam-s"}
    with pytest.raises(Refusal, match="no no-private-area statement in force"):
        store.withdraw_statement("cam-s", "mask-admin")
