"""The commissioning gate: a camera leaves `commissioning` for `in_service` only with an approved
privacy mask set, or a supervisor's statement that no private area is in view, signed with this
deployment's key (the current one or one retired by a key rotation).

It is applied wherever a camera's state is set by a person: the gateway's camera administration
(create, state change, CSV import) and `csuctl cameras import`. A camera created directly in
service counts as leaving commissioning. Other transitions pass. Masking says whether a mask set
is approved; the statement's signature is checked here against the deployment's keyring. When
ingest or masking cannot answer, the gate refuses (GateUnavailable): no camera goes into service
unchecked.
"""

import csv
import io

import grpc

from services.common.pb.csu.v1 import ingest_pb2, ingest_pb2_grpc, masking_pb2, masking_pb2_grpc
from services.common.signing import Keyring

TIMEOUT_S = 10.0


class GateUnavailable(Exception):
    """Ingest or masking could not say whether the camera may go into service."""


def statement_verifies(statement: masking_pb2.NoPrivateAreaStatement, keyring: Keyring) -> bool:
    """Signed by this deployment's key over exactly these bytes; the key stored with the statement
    counts only if the keyring has it."""
    return keyring.verify(bytes(statement.statement), statement.signature, public_key_pem=statement.public_key_pem)


async def refusal(
    ingest: "ingest_pb2_grpc.IngestServiceAsyncStub",
    masking: "masking_pb2_grpc.MaskingServiceAsyncStub",
    keyring: Keyring,
    camera_id: str,
    target_state: str = "in_service",
) -> str | None:
    """Why the camera may not take target_state (None: it may). Stubs on grpc.aio channels."""
    if target_state != "in_service":
        return None
    try:
        camera = await ingest.GetCamera(ingest_pb2.GetCameraRequest(camera_id=camera_id), timeout=TIMEOUT_S)
        current = camera.state
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.NOT_FOUND:
            raise GateUnavailable("the camera registry is unavailable; try again shortly") from exc
        current = "commissioning"  # a camera being created
    if current != "commissioning":
        return None
    try:
        status = await masking.GetCommissioningStatus(
            masking_pb2.CommissioningStatusRequest(camera_id=camera_id), timeout=TIMEOUT_S
        )
    except grpc.aio.AioRpcError as exc:
        raise GateUnavailable(
            f"masking cannot say whether camera {camera_id} has approved privacy masks "
            f"({exc.details() or exc.code().name}); try again shortly"
        ) from exc
    if status.approved_version or (status.has_statement and statement_verifies(status.statement, keyring)):
        return None
    return (
        f"camera {camera_id} cannot go into service: it has no approved privacy mask set and no supervisor's "
        "signed statement that no private area is in view"
    )


def rows_into_service(data: bytes) -> list[tuple[int, str]]:
    """(line, camera id) of the CSV rows that ask for in_service; malformed CSV is left to ingest's
    own line errors."""
    try:
        rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    except (UnicodeDecodeError, csv.Error):
        return []
    return [
        (line, (row.get("id") or "").strip())
        for line, row in enumerate(rows, start=2)
        if (row.get("id") or "").strip() and (row.get("state") or "").strip() == "in_service"
    ]


async def csv_refusals(
    ingest: "ingest_pb2_grpc.IngestServiceAsyncStub",
    masking: "masking_pb2_grpc.MaskingServiceAsyncStub",
    keyring: Keyring,
    data: bytes,
) -> list[tuple[int, str]]:
    """The gate for every CSV row that asks for in_service, as (line, message): an import is not a
    way round the mask approval."""
    found = []
    for line, camera_id in rows_into_service(data):
        reason = await refusal(ingest, masking, keyring, camera_id)
        if reason:
            found.append((line, reason))
    return found
