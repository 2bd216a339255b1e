"""The per-address limit on refused attempts (kiosk pairing codes)."""

from services.gateway.identity.attempts import AttemptLimiter


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_address_waits_once_it_has_used_its_budget_and_others_do_not() -> None:
    ticks = Ticks()
    limiter = AttemptLimiter(3, 60.0, ticks)
    for _ in range(3):
        assert limiter.retry_after("10.0.0.1") == 0
        limiter.failed("10.0.0.1")
        ticks.now += 10
    assert limiter.retry_after("10.0.0.1") == 30.0  # the first refusal leaves the window at 1060
    assert limiter.retry_after("10.0.0.2") == 0
    ticks.now += 30
    assert limiter.retry_after("10.0.0.1") == 0
    limiter.failed("10.0.0.1")
    assert limiter.retry_after("10.0.0.1") == 10.0
