"""PTZ arbitration on a ManualClock: priorities, idle timeout, reservations, admin release, tours."""

from datetime import UTC, datetime, timedelta

import pytest

from services.common.clock import ManualClock
from services.ingest.ptz.arbitration import Arbiter, PtzBusy, PtzRefused

NOW = datetime(2026, 11, 25, 21, 0, tzinfo=UTC)
OPERATOR, POLICE, SUPERVISOR = 50, 60, 80


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def arbiter(clock: ManualClock) -> Arbiter:
    return Arbiter("cam-7", clock, idle_timeout_s=15)


def test_first_come_holds_and_equal_or_lower_priority_gets_the_holders_name(
    arbiter: Arbiter, clock: ManualClock
) -> None:
    arbiter.claim("dupont", OPERATOR)
    clock.advance(timedelta(seconds=3))
    with pytest.raises(PtzBusy) as busy:
        arbiter.claim("martin", OPERATOR)
    assert str(busy.value) == "PTZ of camera cam-7 is held by dupont (priority 50, 12 s left)"
    with pytest.raises(PtzBusy, match="held by dupont"):
        arbiter.claim("stagiaire", 10)
    session = arbiter.claim("dupont", OPERATOR)  # the holder's own commands refresh the session
    assert arbiter.time_left_s(session) == 15


def test_higher_priority_takes_over(arbiter: Arbiter) -> None:
    arbiter.claim("dupont", OPERATOR)
    session = arbiter.claim("agent-pn-12", POLICE)
    assert session.holder == "agent-pn-12"
    assert arbiter.preempted[0][0].holder == "dupont" and arbiter.preempted[0][1] == "agent-pn-12"
    with pytest.raises(PtzBusy, match=r"held by agent-pn-12 \(priority 60"):
        arbiter.claim("dupont", OPERATOR)


def test_idle_timeout_frees_the_camera(arbiter: Arbiter, clock: ManualClock) -> None:
    arbiter.claim("dupont", OPERATOR)
    clock.advance(timedelta(seconds=14.9))
    with pytest.raises(PtzBusy):
        arbiter.claim("martin", OPERATOR)
    clock.advance(timedelta(seconds=0.2))
    assert arbiter.session() is None
    assert arbiter.claim("martin", OPERATOR).holder == "martin"


def test_reservation_outlasts_the_idle_timeout_and_resists_lower_priorities(
    arbiter: Arbiter, clock: ManualClock
) -> None:
    arbiter.reserve("chef-poste", SUPERVISOR, duration_s=600)
    clock.advance(timedelta(seconds=300))
    with pytest.raises(PtzBusy) as busy:
        arbiter.claim("agent-pn-12", POLICE)
    assert str(busy.value) == "PTZ of camera cam-7 is reserved by chef-poste (priority 80, 300 s left)"
    with pytest.raises(PtzBusy):
        arbiter.reserve("other-supervisor", SUPERVISOR, 60)
    assert arbiter.claim("chef-poste", SUPERVISOR).reserved  # commands keep the reservation
    clock.advance(timedelta(seconds=301))
    assert arbiter.session() is None  # the reservation ran out


def test_release_by_holder_or_administrator_only(arbiter: Arbiter) -> None:
    arbiter.reserve("chef-poste", SUPERVISOR, duration_s=600)
    with pytest.raises(PtzRefused, match="only its holder or an administrator can release it"):
        arbiter.release("dupont")
    ended = arbiter.release("admin", force=True)
    assert ended is not None and ended.holder == "chef-poste"
    assert arbiter.claim("dupont", OPERATOR).holder == "dupont"
    assert arbiter.release("dupont") is not None and arbiter.session() is None


def test_a_tour_holds_at_low_priority_until_stopped(arbiter: Arbiter, clock: ManualClock) -> None:
    session = arbiter.claim("dupont", 10, tour="ronde-nuit")
    clock.advance(timedelta(minutes=30))
    assert arbiter.session() == session  # tours do not idle out
    with pytest.raises(PtzBusy, match="on guard tour 'ronde-nuit' started by dupont"):
        arbiter.claim("robot", 5)
    assert arbiter.claim("martin", OPERATOR).holder == "martin"  # any operator takes over
    arbiter.end_tour("ronde-nuit")
    assert arbiter.session() is not None  # the tour's end does not end martin's session
