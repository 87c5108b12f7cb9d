"""Errors of zone planning that carry data for the client (violations, a repair offer)."""

from __future__ import annotations

from typing import Any

from gis.platform.errors import InvalidInputError


class ZoneRulesError(InvalidInputError):
    """A zone breaks one or more of the city's rules; `violations` are GeoJSON Features."""

    def __init__(self, violations: list[dict[str, Any]]) -> None:
        rules = sorted({v["properties"]["rule"] for v in violations})
        super().__init__(f"zone breaks {len(violations)} rule(s): {', '.join(rules)}")
        self.violations = violations


class InvalidZoneGeometryError(InvalidInputError):
    """A zone polygon that is invalid; `repair` is ST_MakeValid's answer, offered, never applied."""

    def __init__(self, reason: str, *, repair: dict[str, Any] | None = None) -> None:
        super().__init__(f"invalid zone polygon: {reason}")
        self.reason = reason
        self.repair = repair
