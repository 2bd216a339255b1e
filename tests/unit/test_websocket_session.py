"""The close frame a refused or ended WebSocket session gets: 4000 + the HTTP status, and a reason
that fits the frame (123 bytes of UTF-8) whatever the detail's length and alphabet."""

from fastapi import HTTPException

from services.gateway.websocket_session import MAX_REASON_BYTES, close_for


def test_the_code_carries_the_status_and_a_short_reason_is_kept_whole() -> None:
    assert close_for(HTTPException(403, "habilitation expirée")) == (4403, "habilitation expirée")
    assert close_for(HTTPException(401, "session revoked")) == (4401, "session revoked")


def test_a_long_accented_reason_is_cut_to_the_frame_on_a_character_boundary() -> None:
    code, reason = close_for(HTTPException(404, "caméra inconnue " + "é" * 60_000))
    assert code == 4404
    assert len(reason.encode()) <= MAX_REASON_BYTES and reason.startswith("caméra inconnue é")
    assert len(reason.encode()) >= MAX_REASON_BYTES - 1  # cut at the limit, not short of it
