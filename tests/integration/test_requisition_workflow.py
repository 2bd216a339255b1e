"""The requisition service on real servers (S3, database, NATS), with the archive in-process and
time moved by a ManualClock: the buffer's deadline, the legal hold, the package and its verifier,
the register's chain, and the archive's holds with their legal clamp."""

import asyncio
import io
import json
import zipfile
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from sqlalchemy import text

from services.common.clock import to_us
from services.common.pb.csu.v1 import archive_pb2, requisition_pb2
from services.requisition import csu_verify, progress
from tests.support.archive import START, T0_US
from tests.support.requisition import pdf_bytes, stack, stub

CAM = "cam-1"
OPERATOR = requisition_pb2.Actor(username="op-1", display_name="Opératrice Une", role="supervisor")
MANAGER = requisition_pb2.Actor(username="mgr-1", display_name="Responsable CSU", role="manager")
DAY = timedelta(days=1)
S = 1_000_000


def new_request(start_s: float = 2, end_s: float = 9) -> requisition_pb2.CreateRequisitionRequest:
    return requisition_pb2.CreateRequisitionRequest(
        requesting_service="Commissariat de Metz",
        officer="Lieutenant Martin",
        officer_contact="martin@interieur.gouv.fr",
        case_reference="PV 2026/00123",
        reason="vol à l'arraché place d'Armes",
        channel="phone",
        ranges=[
            requisition_pb2.CameraRange(
                camera_id=CAM,
                start_us=T0_US + int(start_s * S),
                end_us=T0_US + int(end_s * S),
                camera_name="Place d'Armes",
                retention_days=15,
            )
        ],
        actor=OPERATOR,
    )


async def upload(api, request_id: str, data: bytes, filename: str = "requisition.pdf", **meta: str):  # type: ignore[no-untyped-def]
    fields = {
        "requisition_id": request_id,
        "number": "REQ-2026-0042",
        "authority": "Procureur de la République de Metz",
        "authority_kind": "magistrate",
        "issued_on": (START - DAY).date().isoformat(),
        "filename": filename,
    } | meta

    async def messages():  # type: ignore[no-untyped-def]
        yield requisition_pb2.RequisitionUpload(meta=requisition_pb2.RequisitionUploadMeta(actor=OPERATOR, **fields))
        for i in range(0, len(data), 100_000):
            yield requisition_pb2.RequisitionUpload(data=data[i : i + 100_000])

    return await api.ReceiveRequisition(messages())


async def read_all(call) -> tuple[requisition_pb2.FileInfo, bytes]:  # type: ignore[no-untyped-def]
    info = None
    data = bytearray()
    async for chunk in call:
        if chunk.HasField("info"):
            info = chunk.info
        data += chunk.data
    assert info is not None
    return info, bytes(data)


async def test_unclaimed_buffer_is_purged_at_the_footages_retention(
    tmp_path: Path, database_url: str, s3, nats_url: str
) -> None:  # type: ignore[no-untyped-def]
    st = await stack(tmp_path, database_url, s3, nats_url=nats_url, cameras={CAM: "Place d'Armes"})
    try:
        segments = await st.archive.record(CAM, T0_US, 12)
        api = stub(st.target)
        created = await api.CreateRequisition(new_request())
        assert created.state == "requested" and created.number.startswith("RQ-")
        # Not yet extracted: nothing to approve, no requisition to receive.
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await api.Approve(
                requisition_pb2.ApproveRequest(id=created.id, actor=MANAGER, reauthenticated_us=to_us(st.clock.now()))
            )
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "cannot approve" in refused.value.details()

        extracted = await api.Extract(requisition_pb2.RequisitionRef(id=created.id, actor=OPERATOR))
        assert extracted.state == "extracted" and extracted.extracted_by == "op-1"
        first = min(s.start_us for s in segments if s.end_us > T0_US + 2 * S)
        assert extracted.buffer_deadline_us == first + 15 * 86_400 * S
        part = extracted.parts[0]
        assert part.camera_name == "Place d'Armes" and part.clip_sha256 and part.segments
        assert all(seg.sha256 for seg in part.segments)
        copies = st.keys(st.ctx.extractions, f"req/{created.id}/")
        assert len(copies) == len(part.segments) + 1  # the segments and the package's clip

        # A day before the deadline nothing happens; after it, the buffer goes.
        st.clock.advance(timedelta(microseconds=extracted.buffer_deadline_us - to_us(st.clock.now())) - DAY)
        await st.tick()
        assert (
            await api.GetRequisition(requisition_pb2.RequisitionRef(id=created.id, actor=OPERATOR))
        ).state == "extracted"
        st.clock.advance(DAY + timedelta(minutes=1))
        done = await st.tick()
        assert done["expired"] == 1 and done["purged"] == 1
        expired = await api.GetRequisition(requisition_pb2.RequisitionRef(id=created.id, actor=OPERATOR))
        assert expired.state == "expired" and expired.purge_reason == "expired" and not expired.parts
        assert expired.transitions[-1].actor == "system" and "retention" in expired.transitions[-1].reason
        assert st.keys(st.ctx.extractions) == []
        entries = (await api.ListRegister(requisition_pb2.ListRegisterRequest())).entries
        assert [e.kind for e in entries] == ["extraction", "purge"]
        purge = json.loads(entries[-1].payload_json)
        assert purge["reason"] == "expired" and purge["segments"] == [s.sha256 for s in part.segments]
        assert (await api.VerifyRegister(requisition_pb2.VerifyRegisterRequest())).ok

        # A changed register entry is found, and named.
        with st.ctx.engine.begin() as conn:
            conn.execute(text("UPDATE requisition_register SET payload_json = :p WHERE seq = 1"), {"p": '{"forged":1}'})
        verdict = await api.VerifyRegister(requisition_pb2.VerifyRegisterRequest())
        assert not verdict.ok and verdict.first_bad_seq == 1 and "changed" in verdict.problem
    finally:
        await st.stop()


async def test_legal_hold_package_verifier_and_delivery(tmp_path: Path, database_url: str, s3) -> None:  # type: ignore[no-untyped-def]
    st = await stack(tmp_path, database_url, s3, cameras={CAM: "Place d'Armes"})
    try:
        await st.archive.record(CAM, T0_US, 12)
        api = stub(st.target)
        created = await api.CreateRequisition(new_request())
        await api.Extract(requisition_pb2.RequisitionRef(id=created.id, actor=OPERATOR))

        # Bad uploads: refused with the reason, nothing stored.
        for data, name, fragment in (
            (b"MZ\x90\x00 not a document", "scan.pdf", "not a PDF, JPEG or PNG"),
            (pdf_bytes()[:-40], "scan.pdf", "truncated"),
            (pdf_bytes(), "../../etc/passwd.pdf", "plain name"),
            (pdf_bytes(), "scan.png", "content is application/pdf"),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as bad:
                await upload(api, created.id, data, name)
            assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT and fragment in bad.value.details(), (
                bad.value.details()
            )
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await upload(api, created.id, pdf_bytes(), authority="")
        assert "authority is required" in bad.value.details()
        assert st.keys(st.ctx.documents) == []

        received = await upload(api, created.id, pdf_bytes())
        assert received.state == "requisition_received" and received.legal_hold and received.buffer_deadline_us == 0
        assert received.requisition.sha256 and received.requisition.authority_kind == "magistrate"
        # Past the footage's retention, the held extract stays.
        st.clock.advance(timedelta(days=20))
        await st.tick()
        assert len(st.keys(st.ctx.extractions, f"req/{created.id}/")) > 1

        now = to_us(st.clock.now())
        with pytest.raises(grpc.aio.AioRpcError) as own:
            await api.Approve(
                requisition_pb2.ApproveRequest(
                    id=created.id,
                    actor=requisition_pb2.Actor(username="op-1", role="manager"),
                    reauthenticated_us=now,
                )
            )
        assert own.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "four-eyes" in own.value.details()
        approved = await api.Approve(
            requisition_pb2.ApproveRequest(id=created.id, actor=MANAGER, reauthenticated_us=now, comment="conforme")
        )
        assert approved.state == "approved" and approved.approval.signature and approved.approval.register_seq

        with pytest.raises(grpc.aio.AioRpcError) as short:
            await api.BuildPackage(requisition_pb2.BuildPackageRequest(id=created.id, actor=OPERATOR, password="short"))
        assert short.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "12 characters" in short.value.details()
        built = await api.BuildPackage(requisition_pb2.BuildPackageRequest(id=created.id, actor=OPERATOR))
        info, package = await read_all(api.ReadPackage(requisition_pb2.RequisitionRef(id=created.id, actor=OPERATOR)))
        assert info.sha256 == built.package.sha256 and len(package) == built.package.size

        zip_path = tmp_path / "package.zip"
        zip_path.write_bytes(package)
        report = csu_verify.verify_package(str(zip_path), expected_fingerprint=st.ctx.key_fingerprint)
        assert report.ok, report.problems
        manifest = report.manifest
        assert manifest["requisition"]["number"] == "REQ-2026-0042"
        assert manifest["approval"]["manager"] == "mgr-1" and manifest["operator"]["username"] == "op-1"
        camera = manifest["cameras"][0]
        assert camera["name"] == "Place d'Armes" and camera["parts"][0]["segments"][0]["sha256"]
        assert camera["parts"][0]["start_paris"].endswith(("+01:00", "+02:00"))

        # Tampering: a byte of the video, an added file, a removed file, another key.
        folder = tmp_path / "unzipped"
        with zipfile.ZipFile(io.BytesIO(package)) as z:
            z.extractall(folder)
        root = next(folder.iterdir())
        assert csu_verify.verify_package(str(root)).ok
        video = next((root / "video").iterdir())
        original = video.read_bytes()
        video.write_bytes(original[:1000] + bytes([original[1000] ^ 1]) + original[1001:])
        assert any("changed file: video/" in p for p in csu_verify.verify_package(str(root)).problems)
        video.write_bytes(original)
        (root / "extra.txt").write_text("added")
        assert any("added file" in p for p in csu_verify.verify_package(str(root)).problems)
        (root / "extra.txt").unlink()
        (root / "README.txt").unlink()
        assert any("missing file: README.txt" in p for p in csu_verify.verify_package(str(root)).problems)

        # Delivery on USB: the hash must be the package's; then buffer and package are purged.
        with pytest.raises(grpc.aio.AioRpcError) as wrong:
            await api.RecordDelivery(
                requisition_pb2.DeliveryRequest(
                    id=created.id, actor=OPERATOR, medium="usb", recipient_name="Lt Martin",
                    recipient_service="Commissariat de Metz", recipient_id="RIO 1234567", package_sha256="0" * 64,
                )
            )  # fmt: skip
        assert "not the package's" in wrong.value.details()
        delivered = await api.RecordDelivery(
            requisition_pb2.DeliveryRequest(
                id=created.id, actor=OPERATOR, medium="usb", recipient_name="Lt Martin",
                recipient_service="Commissariat de Metz", recipient_id="RIO 1234567",
                package_sha256=built.package.sha256,
            )
        )  # fmt: skip
        assert delivered.state == "delivered" and delivered.purge_reason == "delivered"
        assert delivered.delivery.receipt_sha256 and delivered.delivery.package_sha256 == built.package.sha256
        assert st.keys(st.ctx.extractions) == [] and st.keys(st.ctx.exports) == []
        receipt_info, receipt = await read_all(
            api.ReadReceipt(requisition_pb2.RequisitionRef(id=created.id, actor=OPERATOR))
        )
        assert receipt.startswith(b"%PDF") and receipt_info.content_type == "application/pdf"
        kinds = [e.kind for e in (await api.ListRegister(requisition_pb2.ListRegisterRequest())).entries]
        assert kinds == ["extraction", "requisition_received", "approval", "handover", "purge"]
        assert (await api.VerifyRegister(requisition_pb2.VerifyRegisterRequest())).ok
        with pytest.raises(grpc.aio.AioRpcError) as gone:
            await read_all(api.ReadPackage(requisition_pb2.RequisitionRef(id=created.id, actor=OPERATOR)))
        assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        await st.stop()


async def test_holds_keep_footage_but_never_past_30_days(tmp_path: Path, database_url: str, s3) -> None:  # type: ignore[no-untyped-def]
    st = await stack(tmp_path, database_url, s3, cameras={CAM: "Place d'Armes"})
    try:
        segments = await st.archive.record(CAM, T0_US, 20)
        archive = st.archive.stub
        now = to_us(st.clock.now())
        held = await archive.PlaceHold(
            archive_pb2.HoldRequest(
                id="citizen:test:cam-1", camera_id=CAM, start_us=T0_US + 8 * S, end_us=T0_US + 12 * S,
                until_us=now + 90 * 86_400 * S, reason="test", actor="clerk",
            )
        )  # fmt: skip
        # Asked for 90 days: clamped to the legal 30 days after the held footage.
        assert held.until_us == T0_US + 12 * S + 30 * 86_400 * S
        # The bucket's lifecycle backstop now allows the legal maximum (30 + 1 days), not 15 + 1.
        assert [r.days for r in st.archive.store.get_expiry_rules()] == [31]
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await archive.PlaceHold(
                archive_pb2.HoldRequest(id="../x", camera_id=CAM, start_us=T0_US, end_us=T0_US + S, until_us=now + S)
            )
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT

        st.clock.advance(timedelta(days=16))  # past the camera's 15 days
        st.sweeper().sweep()
        kept = {s.id for s in (await archive.ListSegments(
            archive_pb2.ListSegmentsRequest(camera_id=CAM, start_us=T0_US + 8 * S, end_us=T0_US + 12 * S)
        )).segments}  # fmt: skip
        overlapping = {s.id for s in segments if s.start_us < T0_US + 12 * S and s.end_us > T0_US + 8 * S}
        assert kept == overlapping and kept
        assert len(st.keys(st.archive.store, "cam/")) == len(overlapping)  # the rest is gone
        # Held footage stays readable (the operator searches it), as a clip too.
        clip = archive.OpenClip(
            archive_pb2.ClipRequest(camera_id=CAM, start_us=T0_US + 8 * S, end_us=T0_US + 11 * S, stream="main")
        )
        assert [c async for c in clip]

        st.clock.advance(timedelta(days=14, hours=1))  # 30 days after capture: the legal maximum wins
        st.sweeper().sweep()
        assert st.keys(st.archive.store, "cam/") == []
        released = await archive.ReleaseHold(archive_pb2.HoldRef(id="citizen:test:cam-1", actor="clerk"))
        assert released.released_us > 0
    finally:
        await st.stop()


async def test_refusal_partner_isolation_and_statistics(tmp_path: Path, database_url: str, s3) -> None:  # type: ignore[no-untyped-def]
    st = await stack(tmp_path, database_url, s3, cameras={CAM: "Place d'Armes"})
    try:
        await st.archive.record(CAM, T0_US, 12)
        api = stub(st.target)
        metz = requisition_pb2.Actor(username="pn-metz:officer-1", role="police_nationale", partner="pn-metz")
        nancy = requisition_pb2.Actor(username="pn-nancy:officer-9", role="police_nationale", partner="pn-nancy")
        request = new_request()
        request.actor.CopyFrom(metz)
        request.channel = "phone"  # ignored: a partner's request comes through the federation
        created = await api.CreateRequisition(request)
        assert created.channel == "federation" and created.partner == "pn-metz"
        # Another partner does not even see it; a partner does not extract.
        with pytest.raises(grpc.aio.AioRpcError) as hidden:
            await api.GetRequisition(requisition_pb2.RequisitionRef(id=created.id, actor=nancy))
        assert hidden.value.code() == grpc.StatusCode.NOT_FOUND
        listed = await api.ListRequisitions(requisition_pb2.ListRequisitionsRequest(partner="pn-nancy"))
        assert list(listed.requisitions) == []
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await api.Extract(requisition_pb2.RequisitionRef(id=created.id, actor=metz))
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED

        await api.Extract(requisition_pb2.RequisitionRef(id=created.id, actor=OPERATOR))
        with pytest.raises(grpc.aio.AioRpcError) as no_reason:
            await api.Refuse(requisition_pb2.ReasonRequest(id=created.id, actor=MANAGER, reason=""))
        assert no_reason.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.aio.AioRpcError) as not_manager:
            await api.Refuse(requisition_pb2.ReasonRequest(id=created.id, actor=OPERATOR, reason="pas de réquisition"))
        assert not_manager.value.code() == grpc.StatusCode.PERMISSION_DENIED
        refused = await api.Refuse(
            requisition_pb2.ReasonRequest(id=created.id, actor=MANAGER, reason="réquisition non conforme (art. 60-1)")
        )
        assert refused.state == "refused" and refused.purge_reason == "refused"
        assert st.keys(st.ctx.extractions) == []
        with pytest.raises(grpc.aio.AioRpcError) as final:
            await api.Cancel(requisition_pb2.ReasonRequest(id=created.id, actor=OPERATOR, reason="plus utile"))
        assert final.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "refused is final" in final.value.details()
        kinds = [e.kind for e in (await api.ListRegister(requisition_pb2.ListRegisterRequest())).entries]
        assert kinds == ["extraction", "refusal", "purge"]

        stats = await api.GetStatistics(requisition_pb2.StatisticsRequest())
        assert {(c.requesting_service, c.count) for c in stats.per_year} == {("Commissariat de Metz", 1)}
        assert {s.state: s.count for s in stats.requisition_states} == {"refused": 1}
        lead = {t.step: t for t in stats.lead_times}
        assert lead["requested->extracted"].count == 1 and lead["requested->delivered"].count == 0
    finally:
        await st.stop()


async def test_extraction_and_package_build_report_their_progress_while_they_run(  # type: ignore[no-untyped-def]
    tmp_path: Path, database_url: str, s3, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every step written (a few seconds of footage go by faster than the console's 0.5 s), and
    # one-second pieces: the 7 s range is extracted in 7 steps.
    monkeypatch.setattr(progress, "WRITE_S", 0.0)
    st = await stack(tmp_path, database_url, s3, cameras={CAM: "Place d'Armes"}, max_query_range_hours=1 / 3600)
    try:
        await st.archive.record(CAM, T0_US, 12)
        api = stub(st.target)
        created = await api.CreateRequisition(new_request())
        ref = requisition_pb2.RequisitionRef(id=created.id, actor=OPERATOR)
        idle = await api.GetRequisition(ref)
        assert not idle.HasField("extraction_progress") and not idle.HasField("package_progress")
        extracted, seen = await watched(api, ref, api.Extract(ref), "extraction_progress")
        assert extracted.state == "extracted" and len(extracted.parts) == 7
        assert any(0 < p < 1 for p in seen), seen
        assert seen == sorted(seen) and all(0 <= p <= 1 for p in seen), "progress never goes backwards"
        assert not (await api.GetRequisition(ref)).HasField("extraction_progress")

        # The package build reports its own, by bytes through its passes over the clips.
        await upload(api, created.id, pdf_bytes())
        approve = requisition_pb2.ApproveRequest(id=created.id, actor=MANAGER, reauthenticated_us=to_us(st.clock.now()))
        await api.Approve(approve)
        build = requisition_pb2.BuildPackageRequest(id=created.id, actor=OPERATOR)
        built, seen = await watched(api, ref, api.BuildPackage(build), "package_progress")
        assert built.package.sha256
        assert any(0 < p < 1 for p in seen), seen
        assert seen == sorted(seen) and all(0 <= p <= 1 for p in seen), "progress never goes backwards"
        assert not (await api.GetRequisition(ref)).HasField("package_progress")
    finally:
        await st.stop()


async def watched(api, ref, call, field: str):  # type: ignore[no-untyped-def]
    """Run the call while reading the request's `field` as fast as the service answers: (answer, values seen)."""
    running = asyncio.ensure_future(call)
    seen: list[float] = []
    while not running.done():
        now = await api.GetRequisition(ref)
        if now.HasField(field):
            seen.append(getattr(now, field))
        await asyncio.sleep(0.005)
    return await running, seen
