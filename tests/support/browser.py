"""Real browsers for tests, driven by Playwright, which downloads no browser of its own here:
Debian's Chromium (`chromium()`) and Debian's Firefox ESR (`firefox()`).

Playwright drives stock Firefox through WebDriver BiDi (its "moz-firefox" channel). Playwright 1.65
sends `emulation.setMediaFeaturesOverride` to every new browser context, a BiDi command Firefox 153
ESR does not implement yet, so context creation fails with "unknown command". `firefox()` therefore
launches Firefox through a small relay (this module run as a program, `_bidi_relay`) that passes
every BiDi message through unchanged, except that Firefox's "unknown command" answer to that one
command becomes an empty success. Playwright only asks for its default light colour scheme, which
headless Firefox shows anyway; a test asking for another one (emulate_media, color_scheme) would not
get it in firefox(). Once Firefox implements the command, its own answer passes unchanged.
"""

import asyncio
import json
import os
import re
import shlex
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from tests.support.platform import wait_for

CHROMIUM = "/usr/bin/chromium"
FIREFOX = "/usr/bin/firefox-esr"
# Without the background-networking flags Chromium keeps trying to reach Google on a closed network.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]
# Playwright's Firefox profile already turns off updates, telemetry and safe browsing; the console
# autoplays its live video, as with Chromium's autoplay flag, and nothing probes for a captive portal.
FIREFOX_PREFS: dict[str, str | float | bool] = {
    "media.autoplay.default": 0,
    "media.autoplay.blocking_policy": 0,
    "network.captive-portal-service.enabled": False,
}
# BiDi commands Firefox ESR may not know yet that the relay answers itself (see the docstring).
BIDI_NO_OPS = frozenset({"emulation.setMediaFeaturesOverride"})
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"


@contextmanager
def _browser(executable: str, package: str, launch: Callable[[Playwright], Browser]) -> Iterator[Browser]:
    if not os.access(executable, os.X_OK):
        raise RuntimeError(f"{executable} is missing: `make test` installs Debian's {package} package")
    with sync_playwright() as p:
        browser = launch(p)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def chromium() -> Iterator[Browser]:
    with _browser(
        CHROMIUM, "chromium", lambda p: p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
    ) as browser:
        yield browser


@contextmanager
def firefox() -> Iterator[Browser]:
    with tempfile.TemporaryDirectory(prefix="csu-firefox-") as folder:
        relay = Path(folder) / "firefox"
        path = shlex.quote(os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
        relay.write_text(
            f'#!/bin/sh\nPYTHONPATH={path} exec {shlex.quote(sys.executable)} -m tests.support.browser "$@"\n'
        )
        relay.chmod(0o755)
        with _browser(
            FIREFOX,
            "firefox-esr",
            lambda p: p.firefox.launch(
                channel="moz-firefox", executable_path=str(relay), firefox_user_prefs=FIREFOX_PREFS, headless=True
            ),
        ) as browser:
            yield browser


def until(page: Page, expression: str, timeout: float = 30, what: str = "") -> object:
    """Poll a page expression until it is truthy. The console's and the kiosk's Content-Security-
    Policy forbid Playwright's eval-based wait_for_function, as they should: tests run the pages
    exactly as their users get them."""
    return wait_for(lambda: page.evaluate(expression), timeout, what or expression)


async def _bidi_relay(arguments: list[str]) -> int:
    """Run Firefox with Playwright's arguments; announce a relay in place of Firefox's BiDi socket."""
    from websockets.asyncio.client import connect
    from websockets.asyncio.server import ServerConnection, serve

    process = await asyncio.create_subprocess_exec(FIREFOX, *arguments, stderr=asyncio.subprocess.PIPE)
    assert process.stderr is not None
    upstream = ""
    options: dict = {"max_size": None, "ping_interval": None, "compression": None}

    async def relay(client: ServerConnection) -> None:
        asked: set[int] = set()  # ids of BIDI_NO_OPS commands awaiting Firefox's answer
        async with connect(upstream + client.request.path, **options) as firefox:

            async def outbound() -> None:
                async for message in client:
                    command = json.loads(message)
                    if command.get("method") in BIDI_NO_OPS:
                        asked.add(command["id"])
                    await firefox.send(message)

            async def inbound() -> None:
                async for message in firefox:
                    if asked:
                        answer = json.loads(message)
                        if answer.get("id") in asked:
                            asked.discard(answer["id"])
                            if answer.get("type") == "error" and answer.get("error") == "unknown command":
                                message = json.dumps({"type": "success", "id": answer["id"], "result": {}})
                    await client.send(message)

            tasks = [asyncio.create_task(outbound()), asyncio.create_task(inbound())]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                task.cancel()

    server = None
    async for line in process.stderr:
        text = line.decode(errors="replace")
        listening = re.search(r"WebDriver BiDi listening on (ws://\S+)", text)
        if listening and server is None:
            upstream = listening[1]
            server = await serve(relay, "127.0.0.1", 0, **options)
            port = next(iter(server.sockets)).getsockname()[1]
            text = text.replace(upstream, f"ws://127.0.0.1:{port}")
        sys.stderr.write(text)
        sys.stderr.flush()
    if server is not None:
        server.close()
    return await process.wait()


if __name__ == "__main__":
    sys.exit(asyncio.run(_bidi_relay(sys.argv[1:])))
