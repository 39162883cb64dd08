"""Great-circle distances."""

from __future__ import annotations

import math
from typing import Protocol

EARTH_RADIUS_KM = 6371.0088
"""Mean Earth radius (IUGG), the usual choice for haversine distances."""


class HasCoordinates(Protocol):
    @property
    def latitude(self) -> float: ...

    @property
    def longitude(self) -> float: ...


Point = HasCoordinates | tuple[float, float]


def _lat_lon(point: Point) -> tuple[float, float]:
    if isinstance(point, tuple):
        return point
    return point.latitude, point.longitude


def great_circle_km(a: Point, b: Point) -> float:
    """Haversine distance in km between two places or (latitude, longitude) pairs."""
    lat1, lon1 = _lat_lon(a)
    lat2, lon2 = _lat_lon(b)
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    d_phi = phi2 - phi1
    d_lambda = math.radians(lon2 - lon1)
    h = math.sin(d_phi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(d_lambda / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))
