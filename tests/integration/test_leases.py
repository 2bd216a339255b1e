"""Leases in a real NATS KV bucket: one owner per key, takeover after death, fair sharing, history."""

import asyncio
import time

import nats
import pytest

from services.common.leases import MEMBER, LeaseBalancer, LeaseEvent, LeaseManager, overlaps
from tests.support.platform import until
from tests.support.servers import nats_prefix


async def _managers(nats_url: str, count: int, ttl: float) -> tuple[list, list[LeaseManager]]:
    bucket = f"{nats_prefix()}_leases"  # a registered prefix: the bucket goes when the test ends
    clients, managers = [], []
    for n in range(count):
        nc = await nats.connect(nats_url)
        manager = LeaseManager(nc.jetstream(), bucket, f"owner-{n}", ttl)
        await manager.start()
        clients.append(nc)
        managers.append(manager)
    return clients, managers


async def test_one_owner_until_release_then_the_next(nats_url: str) -> None:
    clients, (a, b) = await _managers(nats_url, 2, ttl=5)
    try:
        assert await a.acquire("cam-1")
        assert not await b.acquire("cam-1")
        assert a.holds("cam-1") and not b.holds("cam-1")
        assert await a.renew("cam-1")
        assert await a.owners() == {"cam-1": "owner-0"}
        await a.release("cam-1")
        assert not a.holds("cam-1")
        assert await b.acquire("cam-1")
        assert not await a.renew("cam-1")  # a no longer holds it and cannot take it back by renewing
        history = await a.history()
        assert [(e.owner, e.action) for e in history] == [
            ("owner-0", "acquired"),
            ("owner-0", "renewed"),
            ("owner-0", "released"),
            ("owner-1", "acquired"),
        ]
        assert overlaps(history) == []
    finally:
        for nc in clients:
            await nc.close()


async def test_listings_are_never_short(nats_url: str) -> None:
    """Each listing of leases and members is complete. nats-py's KV watcher can end its initial
    values early (values still in flight); through it about one listing in a hundred came back
    short here, and `csuctl cameras leases` showed a live replica as none."""
    clients, (a, b) = await _managers(nats_url, 2, ttl=10)
    try:
        for key in ("cam-1", "cam-2", "cam-3"):
            assert await a.acquire(key)
        await a.release("cam-3")  # a delete marker among the values: not listed
        assert await b.acquire("cam-4")
        await a.kv.put(MEMBER + "owner-0", b'{"owner": "owner-0"}')
        for _ in range(300):
            assert await a.owners() == {"cam-1": "owner-0", "cam-2": "owner-0", "cam-4": "owner-1"}
            assert set(await b.entries(MEMBER)) == {"owner-0"}
        assert await a.entries("none.") == {}
    finally:
        for nc in clients:
            await nc.close()


async def test_a_silent_owner_stops_believing_before_anyone_else_can_take_over(nats_url: str) -> None:
    clients, (a, b) = await _managers(nats_url, 2, ttl=2)
    try:
        assert await a.acquire("cam-1")
        # a dies silently (never renews). b keeps trying; it must not succeed while a believes.
        taken_at = None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if await b.acquire("cam-1"):
                taken_at = time.monotonic()
                break
            await asyncio.sleep(0.05)
        assert taken_at is not None, "the lease never expired"
        assert not a.holds("cam-1"), "the silent owner still believes it holds the lease"
        assert not await a.renew("cam-1")
        history = await b.history()
        assert [e.action for e in history if e.owner == "owner-0"] == ["acquired", "lost"]
        assert overlaps(history) == []
    finally:
        for nc in clients:
            await nc.close()


def test_overlap_checker_catches_two_owners() -> None:
    events = [
        LeaseEvent("cam-1", "a", "acquired", 1, 1_000, 9_000),
        LeaseEvent("cam-1", "b", "acquired", 2, 5_000, 12_000),
    ]
    assert overlaps(events) and "b acquired" in overlaps(events)[0]
    fine = [*events[:1], LeaseEvent("cam-1", "a", "released", 1, 4_000, 4_000), events[1]]
    assert overlaps(fine) == []
    renewed = [events[0], LeaseEvent("cam-1", "a", "renewed", 3, 4_000, 15_000), events[1]]
    assert overlaps(renewed), "a renewal extends the tenure the next owner must not overlap"


async def test_balancers_share_the_keys_and_survivors_take_a_dead_ones_share(nats_url: str) -> None:
    clients, managers = await _managers(nats_url, 3, ttl=3)
    keys = [f"cam-{n:02d}" for n in range(10)]
    working: dict[str, set[str]] = {m.owner_id: set() for m in managers}
    double: list[str] = []

    def callbacks(owner: str):  # type: ignore[no-untyped-def]
        async def acquired(key: str) -> None:
            if any(key in held for other, held in working.items() if other != owner):
                double.append(key)
            working[owner].add(key)

        async def lost(key: str) -> None:
            working[owner].discard(key)

        return acquired, lost

    balancers = [LeaseBalancer(m, lambda: keys, *callbacks(m.owner_id), interval=0.3) for m in managers]
    stops = [asyncio.Event() for _ in balancers]
    tasks = [asyncio.create_task(b.run(s)) for b, s in zip(balancers, stops, strict=True)]
    try:

        async def shared() -> bool:
            counts = sorted(len(w) for w in working.values())
            return sum(counts) == 10 and counts[-1] <= 4

        await until(shared, 30, "10 keys shared by 3 replicas")
        # Replica 0 dies without giving anything back: its task is cancelled, no shutdown.
        tasks[0].cancel()
        dead = set(working["owner-0"])
        working["owner-0"] = set()
        assert dead

        async def survivors_hold_all() -> bool:
            return len(working["owner-1"] | working["owner-2"]) == 10

        await until(survivors_hold_all, 20, "the survivors to take the dead replica's keys")
        assert not double
        assert overlaps(await managers[1].history()) == []
        assert await managers[1].owners() == {k: o for o in ("owner-1", "owner-2") for k in working[o]}
    finally:
        for stop in stops:
            stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for nc in clients:
            await nc.close()


@pytest.mark.parametrize("ttl", [0.5])
def test_ttl_too_short_is_refused(ttl: float) -> None:
    with pytest.raises(ValueError, match="below one second"):
        LeaseManager(None, "b", "o", ttl)  # type: ignore[arg-type]


async def test_a_restarted_replica_takes_its_own_leases_back_at_once(nats_url: str) -> None:
    """kill -9 then restart under the same name: its cameras come back without waiting out the TTL;
    another replica can neither adopt them nor take them before they expire."""
    clients, (dead, other) = await _managers(nats_url, 2, ttl=30)
    try:
        assert await dead.acquire("cam-1") and await dead.acquire("cam-2")
        # The process dies here: nothing renewed, nothing given back.
        assert await other.adopt({"cam-1", "cam-2"}) == []
        assert not await other.acquire("cam-1")
        nc = await nats.connect(nats_url)
        clients.append(nc)
        restarted = LeaseManager(nc.jetstream(), dead.bucket, dead.owner_id, 30)
        await restarted.start()
        started = time.monotonic()
        assert await restarted.adopt({"cam-1"}) == ["cam-1"]  # only what it still wants
        assert time.monotonic() - started < 5  # not the 30 s TTL
        assert restarted.holds("cam-1") and not restarted.holds("cam-2")
        assert await restarted.renew("cam-1")
        assert await other.owners() == {"cam-1": dead.owner_id, "cam-2": dead.owner_id}
        assert overlaps(await other.history()) == []
        # The balancer of a restarted replica starts the work of what it took back at once.
        started_work: list[str] = []

        async def acquired(key: str) -> None:
            started_work.append(key)

        async def lost(key: str) -> None:
            pass

        again = LeaseManager(nc.jetstream(), dead.bucket, dead.owner_id, 30)
        await again.start()
        balancer = LeaseBalancer(again, lambda: ["cam-1", "cam-2"], acquired, lost, interval=60)
        stop = asyncio.Event()
        task = asyncio.create_task(balancer.run(stop))
        await until(lambda: set(started_work) == {"cam-1", "cam-2"}, 5, "both cameras running again")
        stop.set()
        await task
    finally:
        for nc in clients:
            await nc.close()


def test_replicas_sharing_a_data_folder_get_distinct_slots_and_a_restart_gets_the_dead_ones(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    script = (
        "import sys, time; from pathlib import Path; from services.common.leases import replica_id; "
        "print(replica_id('svc', Path(sys.argv[1])), flush=True); time.sleep(float(sys.argv[2]))"
    )

    def start(hold_s: float) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path), str(hold_s)], stdout=subprocess.PIPE, text=True
        )

    first, second = start(30), start(30)
    try:
        a, b = first.stdout.readline().strip(), second.stdout.readline().strip()  # type: ignore[union-attr]
        assert a != b and {a.rsplit("-", 1)[1], b.rsplit("-", 1)[1]} == {"0", "1"}
        first.kill()  # kill -9: its slot's lock goes with the process
        first.wait()
        third = start(0)
        assert third.stdout.readline().strip() == a  # type: ignore[union-attr]
        third.wait()
    finally:
        for process in (first, second):
            process.kill()
            process.wait()


async def test_a_nats_restart_suspends_a_lease_then_gives_it_back(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """NATS away past a lease's belief: the owner stops acting (holds() is false) without losing it;
    renewed on the same revision once NATS is back, since nobody could write the key meanwhile."""
    from tests.support.servers import RestartableNats

    with RestartableNats(tmp_path / "nats") as server:
        nc = await nats.connect(server.url, reconnect_time_wait=0.5, max_reconnect_attempts=-1)
        try:
            # Believed 6 s after each write, expired by the server 20 s after it.
            manager = LeaseManager(nc.jetstream(), f"{nats_prefix()}_leases", "owner-0", ttl=20, margin=14)
            await manager.start()
            assert await manager.acquire("cam-1")
            server.stop()
            await asyncio.sleep(7)
            assert not manager.holds("cam-1") and manager.suspended("cam-1")
            assert not await manager.renew("cam-1")  # unreachable: still suspended, not lost
            assert manager.suspended("cam-1")
            server.start()
            await until(lambda: manager.renew("cam-1"), 10, "the lease renewed once NATS is back")
            assert manager.holds("cam-1") and not manager.suspended("cam-1")
            other = LeaseManager(nc.jetstream(), manager.bucket, "owner-1", ttl=20)
            await other.start()
            assert not await other.acquire("cam-1")
            history = await other.history()
            assert [(e.owner, e.action) for e in history] == [("owner-0", "acquired"), ("owner-0", "renewed")]
            assert overlaps(history) == []
        finally:
            await nc.close()
