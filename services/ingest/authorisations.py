"""Prefectoral authorisations: validity in time, the authorised perimeter, and what they allow.

A camera may record only while its position lies inside the perimeter of an authorisation that is
in force (decision date <= now < expiry). An order lasts at most five years; it is flagged
"expiring" four months before its end, when the renewal must be filed. Perimeters are GeoJSON
polygons in [lon, lat] order (RFC 7946); a point on the boundary counts as inside.
"""

import calendar
import json
from datetime import datetime
from functools import lru_cache
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator
from shapely.geometry import Point, shape
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity

from services.common.clock import from_us, to_us
from services.common.settings import LEGAL_MAX_RETENTION_DAYS

MAX_YEARS = 5
WARNING_MONTHS = 4
VALID, EXPIRING, EXPIRED, NOT_YET_VALID = "valid", "expiring", "expired", "not_yet_valid"
REFERENCE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


def add_months(moment: datetime, months: int) -> datetime:
    """Calendar months (negative to go back); the day is clamped (31 Aug - 6 months = 28/29 Feb)."""
    index = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(index, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def warning_from_us(expiry_us: int) -> int:
    return to_us(add_months(from_us(expiry_us), -WARNING_MONTHS))


def status(decision_us: int, expiry_us: int, now_us: int) -> str:
    if now_us < decision_us:
        return NOT_YET_VALID
    if now_us >= expiry_us:
        return EXPIRED
    if now_us >= warning_from_us(expiry_us):
        return EXPIRING
    return VALID


def in_force(decision_us: int, expiry_us: int, now_us: int) -> bool:
    return status(decision_us, expiry_us, now_us) in (VALID, EXPIRING)


@lru_cache(maxsize=1024)
def perimeter(geojson: str) -> BaseGeometry:
    """The perimeter as a shapely geometry; ValueError naming the problem."""
    try:
        data = json.loads(geojson)
    except ValueError as exc:
        raise ValueError(f"perimeter is not JSON: {exc}") from exc
    if isinstance(data, dict) and data.get("type") == "Feature":
        data = data.get("geometry")
    if not isinstance(data, dict) or data.get("type") not in ("Polygon", "MultiPolygon"):
        raise ValueError("perimeter must be a GeoJSON Polygon or MultiPolygon (or a Feature holding one)")
    try:
        geometry = shape(data)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise ValueError(f"perimeter is not a valid GeoJSON {data['type']}: {exc}") from exc
    if not geometry.is_valid:
        raise ValueError(f"perimeter is not a valid polygon: {explain_validity(geometry)}")
    if geometry.is_empty or geometry.area == 0:
        raise ValueError("perimeter encloses no area")
    minx, miny, maxx, maxy = geometry.bounds
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise ValueError("perimeter coordinates must be [longitude, latitude] in degrees")
    return geometry


def contains(geojson: str, lat: float, lon: float) -> bool:
    return perimeter(geojson).covers(Point(lon, lat))


class AuthorisationInput(BaseModel):
    """An authorisation as an administrator enters it; validation errors name the rule."""

    model_config = ConfigDict(extra="forbid")

    reference: str = Field(pattern=REFERENCE_PATTERN)
    decision_us: int
    expiry_us: int
    purposes: list[Text] = Field(min_length=1)
    max_retention_days: int = Field(ge=1, le=LEGAL_MAX_RETENTION_DAYS)
    recipients: list[Text] = Field(min_length=1)
    perimeter_geojson: str

    @field_validator("perimeter_geojson")
    @classmethod
    def _perimeter(cls, value: str) -> str:
        perimeter(value)
        return value

    @model_validator(mode="after")
    def _dates(self) -> "AuthorisationInput":
        decision, expiry = from_us(self.decision_us), from_us(self.expiry_us)
        if expiry <= decision:
            raise ValueError("expiry must be after the decision date")
        if expiry > add_months(decision, 12 * MAX_YEARS):
            raise ValueError(
                f"an authorisation lasts at most {MAX_YEARS} years: expiry {expiry:%Y-%m-%d} is after "
                f"{add_months(decision, 12 * MAX_YEARS):%Y-%m-%d}"
            )
        return self
