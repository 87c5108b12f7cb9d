"""What every analysis result says about itself: method, parameters, study area, as-of time.

A map or table without these is a picture, not a finding: the reader must know what was
tested, on which area, with which settings and on data up to when. Pure data, no database,
so maps/ may render it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class AnalysisAbout:
    """Method statement (Chinese), parameters, study area and as-of time of one result."""

    title: str  # e.g. "投诉热点"
    method: str  # one or two Chinese sentences: what was computed and tested
    parameters: dict[str, Any]
    study_area: str
    as_of: dt.datetime
    validated: str = ""  # the peer library the arithmetic was checked against
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form for the API (`about` member of a result)."""
        return {"title": self.title, "method": self.method, "parameters": self.parameters,
                "study_area": self.study_area, "as_of": self.as_of.isoformat(),
                "validated": self.validated, "notes": list(self.notes)}


def now_in_china() -> dt.datetime:
    """The current moment in China time, to the second (the as-of time of live data)."""
    from gis.analysis.common import CHINA_TZ

    return dt.datetime.now(CHINA_TZ).replace(microsecond=0)
