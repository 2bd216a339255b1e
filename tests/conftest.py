"""Fixtures on real servers: NATS, PostgreSQL (or SQLite), S3 (moto or an endpoint), RTSP."""

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from nats.js import JetStreamContext

from services.common import bus
from tests.support.media import testdata_dir, transcode_h264
from tests.support.platform import Platform
from tests.support.servers import (
    NATS_PREFIXES,
    S3Server,
    database,
    delete_streams,
    nats_prefix,
    nats_server,
    s3_server,
)


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with nats_server(tmp_path_factory.mktemp("nats")) as url:
        yield url


@pytest.fixture(autouse=True)
def _drop_the_tests_streams(request: pytest.FixtureRequest) -> Iterator[None]:
    """The JetStream streams and KV buckets of the prefixes a test handed out go when it ends.

    Kept to the session's end, they filled the embedded server's JetStream storage part-way through
    a full run, and every later service failed to start with a ServerError.
    """
    before = set(NATS_PREFIXES)
    yield
    mine = NATS_PREFIXES - before
    if mine and "nats_url" in request.fixturenames:
        asyncio.run(delete_streams(request.getfixturevalue("nats_url"), mine))
        NATS_PREFIXES.difference_update(mine)


@pytest.fixture
async def events_stream(nats_url: str) -> AsyncIterator[tuple[JetStreamContext, str]]:
    """JetStream and a fresh prefix whose events stream exists (audit records, alarms, segments)."""
    nc = await nats.connect(nats_url)
    prefix = nats_prefix()
    js = nc.jetstream()
    await bus.ensure_events_stream(js, prefix)
    yield js, prefix
    await nc.close()


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with s3_server(tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    with database(tmp_path) as url:
        yield url


@pytest.fixture
def platform(
    tmp_path: Path, nats_url: str, database_url: str, s3: S3Server, request: pytest.FixtureRequest
) -> Iterator[Platform]:
    p = Platform(tmp_path, nats_url, database_url, s3)
    yield p
    killed = p.stop()
    failed = getattr(request.node, "rep_call", None)
    if killed or (failed is not None and failed.failed):
        print(p.logs())
    # Whatever the test did to it (NATS or the store away, partners connected), every service stops
    # on SIGTERM by itself, as Kubernetes stops a pod; a kill loses its last segment and audit writes.
    assert not killed, f"ignored SIGTERM and were killed: {', '.join(killed)}"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def vtest_avi() -> Path:
    folder = testdata_dir()
    if folder is None:
        # A failure, not a skip: a run without the footage has not tested what it claims.
        raise FileNotFoundError(
            "no vtest.avi: not in ../shared/testdata, $CSU_TESTDATA_DIR or .testdata (`make testdata` takes it "
            "from Debian's opencv-doc package)"
        )
    return folder / "vtest.avi"


@pytest.fixture(scope="session")
def vtest_h264(vtest_avi: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """vtest.avi as an H.264 camera sends it (the source every frame is compared against)."""
    return transcode_h264(vtest_avi, tmp_path_factory.mktemp("media") / "vtest_h264.mp4")
