"""Typing noise out of address text: width, spaces, variant characters, Chinese numerals."""

from __future__ import annotations

import re
import unicodedata

MAX_ADDRESS_CHARS = 200
# Traditional or variant forms hotline operators type; 號 is common in Taiwan/HK keyboards.
_VARIANTS = str.maketrans({"號": "号", "棟": "栋", "樓": "楼", "單": "单", "門": "门",
                           "側": "侧", "對": "对", "東": "东", "與": "与", "—": "-", "–": "-",
                           "~": "-", "〜": "-"})
_SPACES = re.compile(r"[\s\u3000]+")
_PUNCT = re.compile(r"[，,。．.；;：:！!？?\"'“”‘’（）()【】\[\]<>《》]")
_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5,
              "六": 6, "七": 7, "八": 8, "九": 9}
_CN_UNITS = {"十": 10, "百": 100, "千": 1000}
# Chinese numerals only where they count something: a doorplate, building, unit, metres.
# 经十路 or 甸柳一区 keep theirs (the name is followed by 路/区, not by one of these).
_CN_NUMBER = re.compile(r"([零〇一二两三四五六七八九十百千]+)(?=号|栋|幢|座|单元|米|层|室|楼|公里)")
ROAD_SUFFIXES = ("大街", "大道", "路", "街", "巷", "胡同", "道", "线")
_ROAD_SUFFIX = re.compile(r"(大街|大道|路|街|巷|胡同)$")


def chinese_to_int(text: str) -> int | None:
    """一百八十 -> 180, 三 -> 3, 二〇五 -> 205; None for anything else."""
    if not text or any(ch not in _CN_DIGITS and ch not in _CN_UNITS for ch in text):
        return None
    if not any(ch in _CN_UNITS for ch in text):  # digit by digit: 二〇五
        return int("".join(str(_CN_DIGITS[ch]) for ch in text))
    total, digit = 0, None
    for ch in text:
        if ch in _CN_DIGITS:
            digit = _CN_DIGITS[ch]
        else:
            total += (1 if digit is None else digit) * _CN_UNITS[ch]
            digit = None
    return total + (digit or 0)


def _numerals(match: re.Match[str]) -> str:
    value = chinese_to_int(match.group(1))
    return match.group(1) if value is None else str(value)


def normalize_text(text: str) -> str:
    """The address as a matcher reads it: half-width, no spaces or punctuation, 号 not 號."""
    text = unicodedata.normalize("NFKC", text)[:MAX_ADDRESS_CHARS]
    text = text.translate(_VARIANTS)
    text = _SPACES.sub("", text)
    text = _PUNCT.sub("", text)
    text = text.replace("#", "号").upper()
    return _CN_NUMBER.sub(_numerals, text)


def name_key(name: str) -> str:
    """A place or road name as an index key (same noise rules as the address)."""
    return normalize_text(name)


def road_core(name: str) -> str:
    """A road name without its generic part: 文化东路 / 文化东街 -> 文化东 (路/街 variants)."""
    return _ROAD_SUFFIX.sub("", name_key(name))
