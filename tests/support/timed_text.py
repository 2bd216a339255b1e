"""Reading the timed-text track of an MP4 (stored segments, live view) with FFmpeg's own MP4
demuxer and mov_text decoder (PyAV), and the texts it must give, computed here with zoneinfo."""

import io
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from itertools import pairwise
from zoneinfo import ZoneInfo

import av

TICKS_PER_S = 90_000


@dataclass(frozen=True)
class Cue:
    start: int  # 90 kHz ticks from the video's first frame
    end: int
    text: str


def tracks(data: bytes) -> tuple[list[tuple[str, str]], list[Cue], int]:
    """(type, codec) of each stream, the text samples, and where the video ends (ticks)."""
    with av.open(io.BytesIO(data)) as container:
        kinds = [(s.type, s.codec_context.name) for s in container.streams]
        assert container.streams.subtitles, f"no text track: {kinds}"
        text = container.streams.subtitles[0]
        assert text.time_base == Fraction(1, TICKS_PER_S)
        cues = []
        for packet in container.demux(text):
            if packet.size == 0:
                continue
            for subtitle in packet.decode():
                # mov_text decodes to an ASS event: "ReadOrder,Layer,Style,Name,L,R,V,Effect,Text".
                cues.append(
                    Cue(packet.pts, packet.pts + packet.duration, bytes(subtitle.ass).decode().split(",", 8)[8])
                )
    with av.open(io.BytesIO(data)) as container:
        video = container.streams.video[0]
        assert video.time_base == Fraction(1, TICKS_PER_S)
        end = max(p.pts + p.duration for p in container.demux(video) if p.size)
    return kinds, cues, end


def expected(moment_us: int, name: str) -> str:
    local = datetime.fromtimestamp(moment_us // 1_000_000, UTC).astimezone(ZoneInfo("Europe/Paris"))
    return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()} \u00b7 {name}"


def check_cues(cues: list[Cue], origin_us: int, end: int, name: str, back_to_back: bool = True) -> None:
    """Each sample gives the Paris second it starts in and the camera's name, and lasts no longer
    than that second; back to back over the whole video (a segment), at least one a second."""
    assert cues, "no text sample"
    for cue in cues:
        # Its first instant (rounded up to the microsecond: a sample starts at or just after a second).
        first_us = origin_us - (-cue.start * 100 // 9)
        last_us = origin_us + (cue.end - 1) * 100 // 9
        assert cue.text == expected(first_us, name), (cue, origin_us)
        assert first_us // 1_000_000 == last_us // 1_000_000, (cue, origin_us)
    if back_to_back:
        assert cues[0].start == 0 and cues[-1].end == end, (cues[0], cues[-1], end)
        assert all(a.end == b.start for a, b in pairwise(cues)), cues
    assert len(cues) >= (cues[-1].end - cues[0].start) / TICKS_PER_S
