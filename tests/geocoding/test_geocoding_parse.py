"""Address parsing (no database): the spoken and typed forms hotline operators hear."""

from __future__ import annotations

import pytest

from gis.geocoding.normalize import chinese_to_int, normalize_text
from gis.geocoding.parse import parse_address

D = "历下区"


@pytest.mark.parametrize("raw, expected", [
    # the four examples
    ("历下区泉城路180号", {"district": "历下区", "road": "泉城路", "number": 180}),
    ("文化东路与历山路交叉口往东50米", {"cross": ("文化东路", "历山路"), "offset": (90.0, 50.0)}),
    ("甸柳一区3号楼", {"place": "甸柳一区", "building": "3"}),
    ("省立医院东门", {"place": "省立医院", "side": "东门"}),
    # prefixes, ranges, suffixes, units, other intersection words, sides, noise
    ("山东省济南市历下区泉城路180-2号", {"admin_code": "370102", "road": "泉城路",
                                     "number": 180, "suffix": "-2"}),
    ("济南历下泉城路18甲号", {"road": "泉城路", "number": 18, "suffix": "甲"}),
    ("泉 城 路 １８０ 號", {"road": "泉城路", "number": 180}),
    ("泉城路一百八十号附近", {"road": "泉城路", "number": 180}),
    ("甸柳一区3栋2单元301室", {"place": "甸柳一区", "building": "3", "unit": "2单元"}),
    ("文化东路/历山路路口", {"cross": ("文化东路", "历山路")}),
    ("文化东路和历山路交汇处", {"cross": ("文化东路", "历山路")}),
    ("省立医院对面", {"place": "省立医院", "side": "对面"}),
    ("省立医院北侧往西30米", {"place": "省立医院", "side": "北侧", "offset": (270.0, 30.0)}),
    ("历城区花园路5号", {"district": "历城区", "admin_code": "370112"}),
])
def test_spoken_forms_parse(raw, expected):
    parsed = parse_address(raw, district_name=D).as_dict()
    for key, value in expected.items():
        assert parsed.get(key) == value, (raw, parsed)


def test_noise_is_normalised():
    assert normalize_text("泉城路　１８０号 ") == "泉城路180号"
    assert normalize_text("经十路（近燕山立交）5號") == "经十路近燕山立交5号"
    # numerals inside names stay: 经十路 is a name, 十五号 a number
    assert normalize_text("经十路十五号") == "经十路15号"
    assert chinese_to_int("一百八十") == 180 and chinese_to_int("二〇五") == 205
    assert chinese_to_int("十二") == 12 and chinese_to_int("路") is None


def test_long_input_is_cut_not_crashed():
    parsed = parse_address("泉" * 10_000, district_name=D)
    assert len(parsed.text) <= 200
