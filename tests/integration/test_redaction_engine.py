"""The redaction engine on vtest.avi, file to file: person mode masks the other people and keeps the
requester; a mask set that cannot be loaded masks the camera whole."""

from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np

from services.common import db
from services.common.clock import SystemClock
from services.common.settings import Settings
from services.masking.node import MaskingNode
from services.masking.planner import SET_UNAVAILABLE
from services.masking.redaction.engine import Selection, redact
from services.masking.store import MaskStore
from tests.support.media import psnr
from tests.support.servers import free_port

T0 = 1_764_000_000_000_000
W, H = 768, 576
REQUESTER_50 = (668, 257, 714, 373)
# Two people walking together left of the requester at frame 50 (x0, y0, x1, y1).
COUPLE_50 = (500, 200, 580, 320)


def _frames(path: Path, first: int, count: int) -> list[np.ndarray]:
    out = []
    with av.open(str(path)) as c:
        for n, frame in enumerate(c.decode(c.streams.video[0])):
            if n >= first:
                out.append(frame.to_ndarray(format="rgb24"))
            if len(out) == count:
                break
    return out


def test_person_mode_masks_the_others_and_keeps_the_requester(vtest_h264: Path, tmp_path: Path) -> None:
    x0, y0, x1, y1 = REQUESTER_50
    box = Selection(T0 + 5_000_000, x0 / W, y0 / H, (x1 - x0) / W, (y1 - y0) / H)
    out = tmp_path / "persons.mp4"
    result = redact(
        vtest_h264, T0, T0 + 4_950_000, T0 + 6_950_000, [box], "persons", "pixelate", (128, 128, 128), out,
        lambda _: False,
    )  # fmt: skip
    assert result.frames == 20
    redacted, source = _frames(out, 0, 20), _frames(vtest_h264, 50, 20)
    first, original = redacted[0], source[0]
    inner = np.zeros((H, W), bool)
    inner[y0 + 4 : y1 - 4, x0 + 4 : x1 - 4] = True
    assert psnr(first, original, inner) >= 28, "the requester must stay as recorded"
    cx0, cy0, cx1, cy1 = COUPLE_50
    couple = first[cy0:cy1, cx0:cx1].astype(int)
    grey = (np.abs(couple - 128).max(axis=2) <= 8).mean()
    assert grey > 0.4, f"the two people beside the requester are not masked ({grey:.0%} grey)"
    elsewhere = np.ones((H, W), bool)
    elsewhere[150:400, 300:768] = False
    assert psnr(first, original, elsewhere) >= 28, "person mode must leave the scene itself as recorded"


async def test_a_mask_set_that_cannot_be_loaded_masks_the_camera_whole(tmp_path: Path) -> None:
    # A database nobody answers: the camera taken now must fail closed, not run without masks.
    settings = Settings(database_url=f"postgresql://nobody@127.0.0.1:{free_port()}/none", data_dir=tmp_path)  # type: ignore[call-arg]
    unreachable = MaskStore(db.make_engine(settings), SystemClock())
    masks, reason = await MaskingNode._load(SimpleNamespace(store=unreachable), "cam-x")  # type: ignore[arg-type]
    assert masks is None and reason == SET_UNAVAILABLE
