"""Per-key leases in a NATS KV bucket: each key has at most one owner, and a dead owner's keys move.

Ingest holds each camera through a lease (masking will do the same): the per-camera state (a
source session, a decoder, a GOP) needs exactly one owner, and replicas must take over from a
replica that dies without a coordinator of our own.

Why there are never two owners at once:
- The bucket's max_age is the TTL: an entry that is not rewritten within TTL disappears on the
  server, and only then can another replica create it (create succeeds only on an absent key).
- Renewal is a compare-and-set on the revision the owner last wrote, so an owner whose entry
  expired (or was taken) learns it on its next renewal and never overwrites the new owner.
- An owner believes it holds a key only until (the moment it *sent* its last successful write)
  + TTL - margin, on its own monotonic clock. The server stored that write after it was sent, so
  the server cannot expire the entry (and nobody can take it) before the old owner has stopped
  believing. `holds()` is that belief: work done for a key checks it (ingest checks it before
  publishing every packet), so no work happens outside the lease even if the owner stalls.
- A belief that lapsed because NATS could not be reached (a NATS restart) is suspended, not lost:
  the work pauses (`holds()` is false) but is not torn down, and the next renewal, still a
  compare-and-set on the revision the owner last wrote, takes it up again if nobody wrote the key
  meanwhile, which proves nobody else held it. Without this a 5 s NATS restart made every replica
  drop every camera and the fleet reshuffled (15 s lost per camera instead of the outage).

History: every acquire, renew, release and loss is appended to a JetStream stream with the owner's
wall-clock time and the end of its belief (`valid_until_us`), so a test (or an auditor) can check
from the record that no key ever had two believing owners (`overlaps`).

Fair sharing (`LeaseBalancer`): replicas register a membership lease; each takes free keys up to
ceil(keys / members) and gives back what it holds beyond that, so a new replica gets work and a
dead one's keys are spread over the survivors.

A restarted replica takes its own leases back at once (`adopt`) instead of waiting out their TTL:
a replica's name is stable across restarts (`replica_id`: the host name, which is the pod's, and
the first free slot of the data folder, held by an flock while the process lives), so the leases
a killed process left under that name are known to be dead (the lock was free) and ours.
Design: docs/design/reliability.md
"""

import asyncio
import fcntl
import json
import math
import os
import socket
import time
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy, KeyValueConfig, StorageType, StreamConfig
from nats.js.kv import KeyValue

from services.common.log import get_logger

log = get_logger(__name__)

LEASE = "lease."
MEMBER = "member."
# The history is evidence for tests and investigations of a recent takeover, not an archive: at
# 128 cameras renewed every few seconds it grows fast, so it keeps an hour, 64 MB at most.
HISTORY_MAX_AGE_S = 3600.0
HISTORY_MAX_BYTES = 64 * 1024 * 1024
# Stopping gives leases back so others take the cameras at once; it must not outlast a pod's grace period.
RELEASE_ALL_TIMEOUT_S = 5.0
# How long a stopping replica lets its balancer finish the round in hand and give its leases back,
# within the launcher's and the pod's grace periods; past it, the leases expire by themselves.
HANDOVER_S = 8.0


@dataclass(frozen=True)
class LeaseEvent:
    key: str
    owner: str
    # "acquired", "renewed", "released" or "lost".
    action: str
    revision: int
    # Owner's wall clock (microseconds, UTC) when it happened.
    at_us: int
    # Until when the owner believes it holds the key (= at_us for released/lost).
    valid_until_us: int


def _wall_us() -> int:
    return time.time_ns() // 1000


def _owner(value: bytes | None) -> str:
    try:
        return str(json.loads(value or b"{}").get("owner", ""))
    except ValueError:
        return ""


# The slot locks this process holds (kept open: closing a file descriptor releases its flock).
_SLOTS: dict[str, int] = {}
MAX_SLOTS = 64


def replica_slot(service: str, data_dir: Path) -> int | None:
    """This process's slot among the replicas of `service` sharing `data_dir` (None: no writable folder).

    An flock on `<data_dir>/run/<service>-<n>.lock`, the first free n, held while the process
    lives: replicas sharing a host and a data folder (`make run`, tests) get distinct slots, and a
    process restarted after a crash gets the one the dead process held.
    """
    if service in _SLOTS:
        return _SLOTS[service]
    folder = data_dir / "run"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for slot in range(MAX_SLOTS):
            fd = os.open(folder / f"{service}-{slot}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            _SLOTS[service] = slot
            return slot
    except OSError as exc:
        log.warning("no replica slot in the data folder", service=service, error=str(exc))
    return None


def replica_id(service: str, data_dir: Path, configured: str = "") -> str:
    """This replica's name in leases: `configured` when set, else host name + its slot (`replica_slot`).

    So a process restarted after a crash has the dead one's name, hence its leases back at once
    (`adopt`). In Kubernetes the host name is the pod's: a restarted container keeps it. Without a
    writable data folder: host name and process id (a restart then waits for the leases' TTL).
    """
    if configured:
        return configured
    host = socket.gethostname().split(".")[0].replace("_", "-")[:48] or "host"
    slot = replica_slot(service, data_dir)
    return f"{host}-{slot}" if slot is not None else f"{host}-{os.getpid()}"[:64]


def overlaps(events: Iterable[LeaseEvent]) -> list[str]:
    """Every moment two owners believed they held the same key, described; [] when there is none.

    Events are in the order the history stream stored them. An owner's tenure runs from its
    "acquired" to its "released"/"lost", or, for an owner that died silently, to the valid_until
    of its last acquire/renew.
    """
    problems: list[str] = []
    tenure: dict[str, tuple[str, int, int]] = {}  # key -> (owner, acquired_at, believes_until)
    for event in events:
        current = tenure.get(event.key)
        if event.action == "acquired":
            if current is not None and current[0] != event.owner and current[2] > event.at_us:
                problems.append(
                    f"{event.key}: {event.owner} acquired at {event.at_us} while {current[0]} "
                    f"believed it held it until {current[2]}"
                )
            tenure[event.key] = (event.owner, event.at_us, event.valid_until_us)
        elif current is not None and current[0] == event.owner:
            if event.action == "renewed":
                tenure[event.key] = (event.owner, current[1], event.valid_until_us)
            else:
                tenure[event.key] = (event.owner, current[1], event.at_us)
    return problems


class LeaseManager:
    """This process's leases in one bucket. Not thread-safe, except `holds`, which any thread may call."""

    def __init__(
        self,
        js: JetStreamContext,
        bucket: str,
        owner_id: str,
        ttl: float,
        *,
        margin: float | None = None,
        history: bool = True,
    ) -> None:
        if ttl < 1:
            raise ValueError("a lease TTL below one second cannot be renewed reliably")
        self.js = js
        self.bucket = bucket
        self.owner_id = owner_id
        self.ttl = ttl
        # Leave room for a slow event loop between the write and our belief check.
        self.margin = margin if margin is not None else max(0.5, ttl * 0.15)
        self._history = history
        self._kv: KeyValue | None = None
        # key -> (revision we last wrote, monotonic deadline of our belief)
        self._held: dict[str, tuple[int, float]] = {}

    @property
    def history_subject(self) -> str:
        return f"leasehist.{self.bucket}"

    @property
    def history_stream(self) -> str:
        return f"LEASEHIST_{self.bucket}".replace("-", "_")

    async def start(self) -> None:
        """Create (or bind to) the bucket and the history stream."""
        try:
            self._kv = await self.js.key_value(self.bucket)
        except nats.js.errors.BucketNotFoundError:
            try:
                self._kv = await self.js.create_key_value(
                    KeyValueConfig(bucket=self.bucket, ttl=self.ttl, history=1, storage=StorageType.FILE)
                )
            except nats.js.errors.BadRequestError:
                self._kv = await self.js.key_value(self.bucket)  # another replica created it first
        if self._history:
            config = StreamConfig(
                name=self.history_stream,
                subjects=[f"{self.history_subject}.>"],
                max_age=HISTORY_MAX_AGE_S,
                max_bytes=HISTORY_MAX_BYTES,
            )
            try:
                await self.js.add_stream(config)
            except nats.js.errors.BadRequestError:
                await self.js.stream_info(self.history_stream)

    @property
    def kv(self) -> KeyValue:
        if self._kv is None:
            raise RuntimeError("LeaseManager.start() was not called")
        return self._kv

    # -- belief ----------------------------------------------------------------------------

    def holds(self, key: str) -> bool:
        """True while this process may act for key (safe to call from any thread)."""
        held = self._held.get(key)
        return held is not None and time.monotonic() < held[1]

    def held(self) -> set[str]:
        now = time.monotonic()
        return {k for k, (_, deadline) in list(self._held.items()) if now < deadline}

    # -- operations ------------------------------------------------------------------------

    def _value(self, valid_until_us: int) -> bytes:
        return json.dumps({"owner": self.owner_id, "until_us": valid_until_us}).encode()

    async def acquire(self, key: str) -> bool:
        """Take key if nobody holds it; True when we now hold it."""
        if self.holds(key):
            return True
        sent, sent_us = time.monotonic(), _wall_us()
        until_us = sent_us + int((self.ttl - self.margin) * 1e6)
        try:
            revision = await self.kv.create(LEASE + key, self._value(until_us))
        except Exception:  # noqa: BLE001 - taken, or no answer: either way we do not hold it
            return False
        self._held[key] = (revision, sent + self.ttl - self.margin)
        await self._record(key, "acquired", revision, sent_us, until_us)
        return True

    async def adopt(self, keys: Collection[str]) -> list[str]:
        """Take back those of `keys` that an earlier process of this replica held (see `replica_id`).

        Each is renewed on the revision found, so if anyone else took one meanwhile the renewal
        fails and it stays theirs. Returns the keys taken back.
        """
        adopted = []
        for key, (owner, revision) in (await self.entries()).items():
            if owner != self.owner_id or key in self._held or key not in keys:
                continue
            sent, sent_us = time.monotonic(), _wall_us()
            until_us = sent_us + int((self.ttl - self.margin) * 1e6)
            try:
                new_revision = await self.kv.update(LEASE + key, self._value(until_us), last=revision)
            except Exception:  # noqa: BLE001 - taken or expired meanwhile: not ours any more
                continue
            self._held[key] = (new_revision, sent + self.ttl - self.margin)
            await self._record(key, "acquired", new_revision, sent_us, until_us)
            adopted.append(key)
        if adopted:
            log.info("leases of a previous run of this replica taken back", keys=len(adopted))
        return adopted

    async def renew(self, key: str) -> bool:
        """Extend our lease on key; False when we do not hold it now (lost, or suspended: see below).

        A compare-and-set on the revision we last wrote, even once our belief has lapsed: it only
        succeeds if nobody wrote the key since, so nobody else can have held it meanwhile.
        """
        held = self._held.get(key)
        if held is None:
            return False
        sent, sent_us = time.monotonic(), _wall_us()
        until_us = sent_us + int((self.ttl - self.margin) * 1e6)
        try:
            try:
                revision = await self.kv.update(LEASE + key, self._value(until_us), last=held[0])
            except nats.js.errors.KeyWrongLastSequenceError:
                # A renewal sent while NATS was away may have been delivered after we gave up on it
                # (nats-py sends what it buffered on reconnect): the entry is then ours, one revision on.
                entry = await self.kv.get(LEASE + key)
                if _owner(entry.value) != self.owner_id:
                    raise
                revision = await self.kv.update(LEASE + key, self._value(until_us), last=entry.revision)
        except nats.js.errors.ServiceUnavailableError:
            return self._unreachable(key)  # JetStream not back yet after a restart
        except (nats.js.errors.KeyWrongLastSequenceError, nats.js.errors.APIError):
            await self._drop(key, held[0])  # written by someone else, or gone: lost
            return False
        except Exception:  # noqa: BLE001 - NATS unreachable: believe until our deadline only
            return self._unreachable(key)
        if key in self._held:
            self._held[key] = (revision, sent + self.ttl - self.margin)
            await self._record(key, "renewed", revision, sent_us, until_us)
        return True

    def _unreachable(self, key: str) -> bool:
        if self.holds(key):
            log.warning("lease renewal failed; retrying until the lease runs out", key=key)
            return True
        log.warning("lease suspended: NATS unreachable past its lifetime; renewed if nobody took it", key=key)
        return False

    def suspended(self, key: str) -> bool:
        """Our belief in key lapsed while NATS was unreachable: work pauses, the next renewal decides."""
        return key in self._held and not self.holds(key)

    async def renew_all(self) -> list[str]:
        """Renew every lease; the keys lost (suspended ones are not: they may come back)."""
        keys = list(self._held)
        await asyncio.gather(*(self.renew(k) for k in keys))
        return [k for k in keys if k not in self._held]

    async def release(self, key: str) -> None:
        """Give key back at once (after the work for it has stopped)."""
        held = self._held.pop(key, None)
        if held is None:
            return
        at = _wall_us()
        await self._record(key, "released", held[0], at, at)
        try:
            await self.kv.delete(LEASE + key, last=held[0])
        except Exception:  # noqa: BLE001 - expiry frees it anyway; we already stopped believing
            log.warning("lease release failed; it expires by itself", key=key)

    async def release_all(self, timeout: float = RELEASE_ALL_TIMEOUT_S) -> None:
        """Give every lease back at once, for at most `timeout`; what is not given back expires by itself.

        One after another, with NATS away, each would wait out its own request timeout.
        """
        keys = list(self._held)
        try:
            await asyncio.wait_for(asyncio.gather(*(self.release(k) for k in keys)), timeout)
        except TimeoutError:
            log.warning("leases not given back in time; they expire by themselves", keys=len(keys))

    async def _drop(self, key: str, revision: int) -> None:
        if self._held.pop(key, None) is not None:
            at = _wall_us()
            await self._record(key, "lost", revision, at, at)

    async def _record(self, key: str, action: str, revision: int, at_us: int, until_us: int) -> None:
        if not self._history:
            return
        event = LeaseEvent(key, self.owner_id, action, revision, at_us, until_us)
        try:
            await self.js.publish(f"{self.history_subject}.{action}", json.dumps(asdict(event)).encode())
        except Exception:  # noqa: BLE001 - history is evidence, not a condition of holding the lease
            log.warning("lease history not written", key=key, action=action)

    # -- what others hold --------------------------------------------------------------------

    async def entries(self, prefix: str = LEASE) -> dict[str, tuple[str, int]]:
        """Live entries under prefix: key (without the prefix) -> (owner, revision).

        One consumer delivering the last value of each key: a single round trip for any number of
        keys, where a get per key would cost one each. Not `KeyValue.watch()`: nats-py 2.16 may
        signal the end of its initial values before values already in flight to it (nats.py #842),
        so about one listing in a hundred came back short. The end is decided here from the
        consumer's own count: what it had delivered and still had pending when asked, all of it
        received, and the last message reporting nothing pending.
        """
        sub = await self.js.subscribe(
            f"$KV.{self.bucket}.{prefix}>",
            stream=f"KV_{self.bucket}",
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
        )
        result: dict[str, tuple[str, int]] = {}
        try:
            info = await sub.consumer_info()
            assert info.delivered is not None and info.num_pending is not None  # a consumer's info has both
            expected = info.delivered.consumer_seq + info.num_pending
            received = 0
            while received < expected:
                msg = await sub.next_msg(timeout=5)
                received += 1
                key = msg.subject.removeprefix(f"$KV.{self.bucket}.{prefix}")
                # Deletes, purges and (nats-server 2.11+) expiry markers end a key.
                if msg.headers and (msg.headers.get("KV-Operation") or msg.headers.get("Nats-Marker-Reason")):
                    result.pop(key, None)
                else:
                    result[key] = (_owner(msg.data), msg.metadata.sequence.stream)
                if received >= expected and msg.metadata.num_pending:
                    expected = received + msg.metadata.num_pending  # written while we read: take them too
        finally:
            await sub.unsubscribe()
        return result

    async def owners(self) -> dict[str, str]:
        """Key -> owner of every live lease (not members)."""
        return {k: owner for k, (owner, _) in (await self.entries()).items()}

    async def history(self) -> list[LeaseEvent]:
        """Every lease event still in the history stream, in stored order."""
        sub = await self.js.subscribe(
            f"{self.history_subject}.>",
            stream=self.history_stream,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.ALL,
        )
        info = await self.js.stream_info(self.history_stream)
        events: list[LeaseEvent] = []
        try:
            for _ in range(info.state.messages):
                msg = await sub.next_msg(timeout=5)
                events.append(LeaseEvent(**json.loads(msg.data)))
                if msg.metadata.sequence.stream >= info.state.last_seq:
                    break
        finally:
            await sub.unsubscribe()
        return events


class LeaseBalancer:
    """Keeps this replica holding its fair share of the keys `wanted()` returns.

    on_acquired(key) starts the work for a key; on_lost(key) must stop it (it is awaited before a
    key is given back, so the next owner never overlaps the work). Membership is a lease of its
    own under "member.<owner>", renewed with the others.
    """

    def __init__(
        self,
        leases: LeaseManager,
        wanted: Callable[[], Collection[str]],
        on_acquired: Callable[[str], Awaitable[None]],
        on_lost: Callable[[str], Awaitable[None]],
        interval: float = 1.0,
    ) -> None:
        self.leases = leases
        self._wanted = wanted
        self._on_acquired = on_acquired
        self._on_lost = on_lost
        self.interval = interval
        self._member_key = MEMBER + leases.owner_id
        self._member_rev: int | None = None
        self._running: set[str] = set()
        self._last_renew = 0.0

    async def _membership(self) -> int:
        """Write our membership entry; the number of live members (ourselves included)."""
        kv = self.leases.kv
        value = json.dumps({"owner": self.leases.owner_id}).encode()
        try:
            if self._member_rev is None:
                self._member_rev = await kv.put(self._member_key, value)
            else:
                self._member_rev = await kv.update(self._member_key, value, last=self._member_rev)
        except nats.js.errors.KeyWrongLastSequenceError:
            self._member_rev = await kv.put(self._member_key, value)
        members = await self.leases.entries(MEMBER)
        members.setdefault(self.leases.owner_id, ("", 0))
        return len(members)

    async def step(self) -> None:
        """One round: renew, stop lost work, give back surplus, take free keys up to our share."""
        now = time.monotonic()
        if now - self._last_renew >= self.leases.ttl / 4:
            self._last_renew = now
            for key in await self.leases.renew_all():
                log.warning("lease lost", key=key)
        for key in list(self._running):
            # Suspended work stays set up (it checks holds() and pauses) until renewal decides.
            if not self.leases.holds(key) and not self.leases.suspended(key):
                self._running.discard(key)
                await self._on_lost(key)
        members = await self._membership()
        wanted = set(self._wanted())
        share = math.ceil(len(wanted) / members) if wanted else 0
        # Keys no longer wanted, then any beyond our share, are stopped before being given back.
        surplus = sorted(self._running - wanted) + sorted(self._running & wanted, reverse=True)
        while surplus and (len(self._running) > share or surplus[0] not in wanted):
            key = surplus.pop(0)
            self._running.discard(key)
            await self._on_lost(key)
            await self.leases.release(key)
        if len(self._running) >= share:
            return
        taken = await self.leases.owners()
        for key in sorted(wanted - self._running - set(taken)):
            if len(self._running) >= share:
                break
            if await self.leases.acquire(key):
                self._running.add(key)
                await self._on_acquired(key)

    async def run(self, stop: asyncio.Event) -> None:
        # What an earlier process of this replica held is ours again at once (no TTL to wait out).
        try:
            for key in await self.leases.adopt(set(self._wanted())):
                self._running.add(key)
                await self._on_acquired(key)
        except Exception as exc:  # noqa: BLE001 - the normal rounds take them after their TTL
            log.warning("leases of a previous run not taken back", error=str(exc) or type(exc).__name__)
        # Let replicas starting together see each other before anyone takes everything.
        try:
            await self._membership()
        except Exception as exc:  # noqa: BLE001
            log.warning("lease membership not written yet", error=str(exc))
        await _sleep_or_stop(stop, self.interval)
        while not stop.is_set():
            try:
                await self.step()
            except Exception as exc:  # noqa: BLE001 - NATS blips: try again next round
                log.warning("lease round failed", error=str(exc) or type(exc).__name__)
            await _sleep_or_stop(stop, self.interval)
        await self.shutdown()

    async def shutdown(self) -> None:
        """Stop all work and give every lease back (a clean stop hands cameras over at once)."""
        for key in sorted(self._running):
            await self._on_lost(key)
        self._running.clear()
        await self.leases.release_all()
        try:
            await self.leases.kv.delete(self._member_key)
        except Exception:  # noqa: BLE001 - expires by itself
            pass

    @property
    def running(self) -> set[str]:
        return set(self._running)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass
