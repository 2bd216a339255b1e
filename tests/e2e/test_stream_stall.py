"""Backend streams are bounded (issue 23): a clip from a frozen archive (SIGSTOP: its TCP stays up,
nothing answers) waited up to 300 s, and a segment's content whose object the archive cannot read
from a store that does not answer waited for the store client's retries. Now the gateway answers
504 naming the archive within CSU_STREAM_STALL_S, caches nothing, and the audit trail records the
attempt as failed with that reason; thawed, the same request succeeds. A clip whose build takes
longer than the bound is not cut: the archive sends progress while it builds."""

import io
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import av
import httpx
import pytest

from tests.support.archive import TcpProxy
from tests.support.platform import Platform, wait_for
from tests.support.servers import S3Server

pytestmark = pytest.mark.e2e
CAMERA = "demo-1"
STALL_S = 5  # small to keep the test short; progress comes every 2 s (rpc.py), so a loaded machine keeps a margin
NO_ANSWER = f"the archive service did not answer within {STALL_S} s"


def test_frozen_archive_or_store_is_a_504_then_works_when_thawed(platform: Platform, s3: S3Server) -> None:
    target = urlsplit(s3.endpoint)
    store = TcpProxy(target.hostname or "127.0.0.1", target.port or 80)
    platform.env["CSU_S3_ENDPOINT"] = store.endpoint
    platform.env["CSU_SEGMENT_DURATION_S"] = "2"
    platform.env["CSU_STREAM_STALL_S"] = str(STALL_S)
    try:
        platform.start(["ingest", "masking", "archive", "gateway"])  # the demo cameras
        # Well above the bound: a request that is not bounded fails the test by this timeout.
        api = platform.client("operator")
        api.timeout = httpx.Timeout(60)
        auditor = platform.client("auditor")
        segments = wait_for(
            lambda: (s := api.get(f"/api/v1/cameras/{CAMERA}/segments").json()) and len(s) >= 3 and s,
            120,
            "three stored segments",
        )

        def trail(action: str, keep: Callable[[dict], bool], count: int) -> list[dict]:
            """The entries of `action` that `keep` selects, once `count` of them are in the trail
            (the entry of the request just answered reaches the database a moment later)."""

            def entries() -> list[dict]:
                found = auditor.get("/api/v1/audit", params={"action": action, "limit": 1000}).json()
                return sorted((e for e in found if keep(e)), key=lambda e: e["seq"])

            wait_for(lambda: len(entries()) >= count, 30, f"{count} {action} entries in the trail")
            return entries()

        # -- a segment's content: the archive answers GetSegment, then its read of the store hangs.
        segment = segments[0]
        content = f"/api/v1/segments/{segment['id']}/content"
        why = {"justification": "stream stall check"}
        store.hold()
        try:
            stalled = api.get(content, params=why)
        finally:
            store.release()
        assert stalled.status_code == 504, stalled.text
        assert NO_ANSWER in stalled.json()["detail"]
        thawed = api.get(content, params=why)
        assert thawed.status_code == 200, thawed.text
        assert len(thawed.content) == segment["bytes"]
        reads = trail("playback.segment", lambda e: e["details"].get("segment") == segment["id"], 2)
        assert [e["outcome"] for e in reads] == ["failed", "ok"], reads
        assert NO_ANSWER in reads[0]["details"]["reason"]

        # -- a clip: the archive process frozen.
        params = why | {"start": segments[0]["start"], "end": segments[2]["end"]}
        clips = platform.workdir / "data" / "cache" / "gateway-clips"
        archive = platform.processes["archive"].process.pid
        os.kill(archive, signal.SIGSTOP)
        try:
            frozen = api.get(f"/api/v1/cameras/{CAMERA}/clip", params=params)
            cached = sorted(p.name for p in clips.iterdir())
        finally:
            os.kill(archive, signal.SIGCONT)
        assert frozen.status_code == 504, frozen.text
        assert NO_ANSWER in frozen.json()["detail"]
        assert cached == []  # not even a partial file
        clip = api.get(f"/api/v1/cameras/{CAMERA}/clip", params=params)
        assert clip.status_code == 200, clip.text
        with av.open(io.BytesIO(clip.content)) as container:
            assert container.streams.video
        plays = trail("playback.clip", lambda e: e["target"] == f"camera:{CAMERA}", 2)
        assert [e["outcome"] for e in plays] == ["failed", "ok"], plays
        assert NO_ANSWER in plays[0]["details"]["reason"]

        # -- a clip whose build outlasts the bound (its segments wait for the store): the archive
        # sends progress meanwhile, so the gateway does not take the work for silence.
        longer = why | {"start": segments[1]["start"], "end": segments[2]["end"]}
        with ThreadPoolExecutor(1) as pool:
            store.hold()
            try:
                pending = pool.submit(api.get, f"/api/v1/cameras/{CAMERA}/clip", params=longer)
                time.sleep(3 * STALL_S)  # the build waits for the store, well past the bound
            finally:
                store.release()
            built = pending.result()
        assert built.status_code == 200, built.text
        with av.open(io.BytesIO(built.content)) as container:
            assert container.streams.video
    finally:
        # The services stop before the store's relay goes: the archive stores its spool on the way out.
        killed = platform.stop()
        store.close()
    assert not killed, f"ignored SIGTERM and were killed: {', '.join(killed)}"
