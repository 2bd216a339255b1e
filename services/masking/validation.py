"""Checks on mask polygons and redaction selections: every refusal names the problem.

A mask that is self-intersecting, degenerate (no area) or outside its coordinate space would be
filled in ways nobody drew (or not at all), so it is refused before it is stored.
"""

import math
from collections.abc import Sequence

import shapely
from shapely.validation import explain_validity

MAX_POLYGONS = 64
MAX_POINTS = 200
# Below this area (in the space's units squared) a polygon is a line or a point, not a mask.
MIN_AREA = 1e-6
SPACES = ("image", "ptz")
# In pan/tilt space a polygon must not wrap around the pan seam (pan -1 and 1 are the same
# direction on a 360-degree camera): half the range is the widest accepted.
MAX_PAN_EXTENT = 1.0

Point = tuple[float, float]


class InvalidMask(ValueError):
    """The polygons break a rule; the message says which polygon and why."""


def check_polygons(polygons: Sequence[Sequence[Point]], space: str) -> list[list[Point]]:
    if space not in SPACES:
        raise InvalidMask(f"unknown coordinate space {space!r}: use 'image' or 'ptz'")
    if len(polygons) > MAX_POLYGONS:
        raise InvalidMask(f"at most {MAX_POLYGONS} polygons per mask set ({len(polygons)} given)")
    low = 0.0 if space == "image" else -1.0
    what = "normalised image coordinates (0..1)" if space == "image" else "pan/tilt coordinates (-1..1)"
    checked: list[list[Point]] = []
    for n, polygon in enumerate(polygons, start=1):
        if len(polygon) < 3:
            raise InvalidMask(f"polygon {n}: a polygon needs at least 3 points ({len(polygon)} given)")
        if len(polygon) > MAX_POINTS:
            raise InvalidMask(f"polygon {n}: at most {MAX_POINTS} points ({len(polygon)} given)")
        for x, y in polygon:
            if not (math.isfinite(x) and math.isfinite(y)):
                raise InvalidMask(f"polygon {n}: coordinates must be finite numbers")
            if not (low <= x <= 1.0 and low <= y <= 1.0):
                raise InvalidMask(f"polygon {n}: point ({x:g}, {y:g}) is outside the {what}")
        shape = shapely.Polygon(polygon)
        # A bow tie's signed areas cancel out: measure what it really covers.
        if shapely.make_valid(shape).area < MIN_AREA:
            raise InvalidMask(f"polygon {n} is degenerate: its points are (nearly) on one line or repeated")
        if not shape.is_valid:
            raise InvalidMask(f"polygon {n} is not a simple polygon (its edges cross): {explain_validity(shape)}")
        if space == "ptz":
            xs = [x for x, _ in polygon]
            if max(xs) - min(xs) > MAX_PAN_EXTENT:
                raise InvalidMask(f"polygon {n} spans more than half the pan range: split it in two")
        checked.append([(float(x), float(y)) for x, y in polygon])
    return checked


def check_box(x: float, y: float, width: float, height: float, what: str) -> None:
    """A normalised box entirely inside the frame, with some area."""
    values = (x, y, width, height)
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{what}: coordinates must be finite numbers")
    if width <= 0 or height <= 0:
        raise ValueError(f"{what}: width and height must be positive")
    if x < 0 or y < 0 or x + width > 1.0 + 1e-9 or y + height > 1.0 + 1e-9:
        raise ValueError(f"{what}: the box ({x:g}, {y:g}, {width:g}x{height:g}) is outside the frame (0..1)")
