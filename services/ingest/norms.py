"""Recording profiles against the technical norms (arrêté du 3 août 2007, DESIGN §8.4).

Stored streams must be at least 352x288 (CIF) at 6 images per second; a close-up camera filming
people must reach 704x576 (4CIF) at 12 images per second, enough to recognise someone. A profile
below them cannot be saved: the footage would be useless as evidence.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Minimum:
    width: int
    height: int
    fps: float
    what: str


STORED = Minimum(352, 288, 6.0, "stored streams")
CLOSE_UP = Minimum(704, 576, 12.0, "close-up cameras filming people")
ARRETE = "arrêté du 3 août 2007"


def profile_problem(width: int, height: int, fps: float, close_up: bool) -> str | None:
    """Why the profile is below the norms, or None when it meets them."""
    minimum = CLOSE_UP if close_up else STORED
    if width >= minimum.width and height >= minimum.height and fps >= minimum.fps:
        return None
    return (
        f"recording profile {width}x{height} at {fps:g} fps is below the {ARRETE} minimum for "
        f"{minimum.what}: at least {minimum.width}x{minimum.height} at {minimum.fps:g} fps"
    )
