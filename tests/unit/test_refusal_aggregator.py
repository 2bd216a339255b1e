"""Aggregated unauthenticated refusals: one entry at once per address and window, then a summary;
bounded memory; and the address unit the login budget counts."""

from services.gateway.identity.attempts import address_key
from services.gateway.identity.refusals import MANY, RefusalAggregator


class Ticks:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_first_refusal_is_written_the_rest_summarised_per_window() -> None:
    ticks = Ticks()
    agg = RefusalAggregator(60.0, ticks)
    written = [agg.note("auth.refused", "203.0.113.5", "unknown session", f"/p{i % 3}", "/p", 1) for i in range(200)]
    assert written.count(True) == 1 and written[0] is True
    assert agg.take_due() == []  # the window is still open
    ticks.now += 60
    (summary,) = agg.take_due()
    assert (summary.address, summary.count, summary.reasons) == ("203.0.113.5", 199, {"unknown session": 199})
    assert summary.samples == ["/p1", "/p2", "/p0"]
    # A new window: its first refusal is written at once again; a window with nothing more is not summarised.
    assert agg.note("auth.refused", "203.0.113.5", "unknown session", "/p", "/p", 2) is True
    ticks.now += 60
    assert agg.take_due() == []


def test_addresses_and_actions_have_windows_of_their_own_and_stopping_flushes_them() -> None:
    agg = RefusalAggregator(60.0, Ticks())
    for address in ("a", "b"):
        for action in ("auth.refused", "auth.login"):
            assert agg.note(action, address, "r", "", "t", 0) is True
            assert agg.note(action, address, "r", "", "t", 0) is False
    due = agg.take_due(everything=True)
    assert sorted((s.action, s.address, s.count) for s in due) == [
        ("auth.login", "a", 1),
        ("auth.login", "b", 1),
        ("auth.refused", "a", 1),
        ("auth.refused", "b", 1),
    ]


def test_memory_is_bounded_many_sources_share_one_window() -> None:
    ticks = Ticks()
    agg = RefusalAggregator(60.0, ticks, max_sources=100)
    written = sum(agg.note("auth.refused", f"10.0.{i // 256}.{i % 256}", "r", "", "t", 0) for i in range(5000))
    assert written == 101  # 100 sources, then one window for all the others
    assert len(agg._open) == 101
    ticks.now += 60
    many = [s for s in agg.take_due() if s.address == MANY]
    assert many[0].count == 4899
    # Once the windows have ended there is room again.
    assert agg.note("auth.refused", "192.0.2.1", "r", "", "t", 0) is True and len(agg._open) == 1


def test_the_login_budget_counts_an_ipv6_subscriber_as_one() -> None:
    assert address_key("192.0.2.7") == "192.0.2.7"
    assert address_key("2001:db8:1:2:3:4:5:6") == address_key("2001:db8:1:2::ffff") == "2001:db8:1:2::/64"
    assert address_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert address_key("") == "(unknown)" and address_key("x" * 100) == "x" * 64
