"""How a command reaches a bollard: a driver per controller type, behind one interface.

- "simulated": a controller in memory (demonstrations, training, tests of the console); it
  accepts every command and remembers the position.
- "http": a generic HTTP relay (the many IP relay boards and controller gateways that take a
  request per action): the bollard's configured URL for "open" or "close", with its configured
  method; any 2xx answer means done. The body (for POST/PUT) names the bollard and the command
  only: the reason and the plate stay in the city's register, they are not sent to a field device.

A driver raises DriverError with a message for the operator; it never retries by itself (opening a
bollard twice is not harmless: the operator decides).
"""

from typing import Literal, Protocol

import httpx

from services.common.settings import redact_url

Command = Literal["open", "close"]
DRIVERS = ("simulated", "http")
METHODS = ("POST", "PUT", "GET")


class DriverError(Exception):
    """The controller did not carry the command out (or cannot say it did)."""


class BollardDriver(Protocol):
    async def send(self, bollard_id: str, command: Command) -> None:
        """Carry the command out, or raise DriverError."""
        ...


class SimulatedController:
    """Accepts every command; `positions` is what a real controller would report."""

    def __init__(self) -> None:
        self.positions: dict[str, str] = {}

    async def send(self, bollard_id: str, command: Command) -> None:
        self.positions[bollard_id] = "open" if command == "open" else "closed"


class HttpRelay:
    def __init__(self, open_url: str, close_url: str, method: str, timeout_s: float) -> None:
        self._urls = {"open": open_url, "close": close_url}
        self._method = method
        self._timeout_s = timeout_s

    async def send(self, bollard_id: str, command: Command) -> None:
        url = self._urls[command]
        body = None if self._method == "GET" else {"bollard": bollard_id, "command": command}
        try:
            async with httpx.AsyncClient(timeout=self._timeout_s, follow_redirects=False) as client:
                answer = await client.request(self._method, url, json=body)
        except Exception as exc:  # any failure to reach it is "not done", never a 500
            raise DriverError(f"the bollard's relay {redact_url(url)} cannot be reached: {type(exc).__name__}") from exc
        if not answer.is_success:
            raise DriverError(f"the bollard's relay answered HTTP {answer.status_code} to {command}")


# One simulated controller per gateway process: its positions outlive a single request.
SIMULATED = SimulatedController()
