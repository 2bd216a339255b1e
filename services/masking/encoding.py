"""x264 settings of the burning-in encoder, per picture size, chosen on the bench's preset table.

bench/presets.py measures candidate settings at the arrêté's profiles against the camera's own
stream (frames per CPU-second, bitrate, SSIM against the camera's decoded frames) and marks, per
profile, the fastest that keeps SSIM >= 0.97 at no more than 1.5x the camera's bitrate; the
README shows the table. What it found (2-core VM, December 2026; bench/results/presets.md):
- `ultrafast` decodes + encodes about twice as many frames per CPU-second as `veryfast` at every
  profile, but spends more bits (no CABAC). Up to 4CIF that is within the bitrate budget at CRF
  23-26; from 720p the bits are bought back with CABAC (~10 % slower, ~20 % fewer bits), which
  keeps SSIM >= 0.97 within 1.5x the camera's bitrate where plain ultrafast cannot;
- CRF rises with the picture size (a bigger picture hides its losses better at a given SSIM, and
  the camera's own bitrate per pixel falls with size);
- one thread per camera: x264's threads add synchronisation and CPU per frame on a busy node,
  where cameras, not threads, fill the cores (sliced threads were within noise).

CSU_X264_PRESET / CSU_X264_CRF / CSU_X264_THREADS override the table (preset "auto" keeps it).
"""

from dataclasses import dataclass

# (largest picture area in pixels, CRF, CABAC): the first row whose area covers the picture applies.
AUTO = [
    (352 * 288, 23, False),
    (704 * 576, 26, False),
    (1280 * 720, 27, True),
    (1 << 62, 28, True),
]
AUTO_PRESET = "ultrafast"


@dataclass(frozen=True)
class EncoderSettings:
    preset: str
    crf: int
    threads: int
    keyframe_interval_s: float


def x264_options(settings: EncoderSettings, width: int, height: int) -> tuple[dict[str, str], int]:
    """(libx264 options, threads) for a picture of this size; tune zerolatency always (no lookahead,
    no frame delay: a frame leaves as soon as it is in)."""
    options = {"tune": "zerolatency", "forced-idr": "1"}
    if settings.preset == "auto":
        crf, cabac = next((c, cabac) for area, c, cabac in AUTO if width * height <= area)
        options |= {"preset": AUTO_PRESET, "crf": str(settings.crf or crf)}
        if cabac:
            options["x264-params"] = "cabac=1"
        return options, settings.threads or 1
    options |= {"preset": settings.preset, "crf": str(settings.crf or 21)}
    return options, settings.threads
