"""Contact data a reporter types into public text (phones, e-mails, ID numbers), masked.

Open311 publishes descriptions and addresses as residents typed them; these patterns find what
must not be published in every common Chinese form before anything leaves (JSON and XML).
"""

from __future__ import annotations

import re
import unicodedata

# What a reporter may type into a description or address that must not be published. The
# patterns run on a matching copy of the text (see _matching_copy): NFKC-normalised, so
# full-width digits, ＋, ＠, （） and ideographic spaces look like ASCII, and Chinese numerals
# read as digits. Digits of a number may be split by spaces, dots, dashes, slashes or
# invisible characters (zero-width space, soft hyphen).
_SEP = r"[\s.\-\u2010-\u2015\u2212/_·\u00ad\u200b-\u200d\u2060\ufeff]{0,3}"
_D = rf"{_SEP}\d"  # one more digit of the same number
_CN_PREFIX = rf"(?:(?:\+|00){_SEP}86|\({_SEP}(?:\+|00)?86{_SEP}\)|86(?={_SEP}1[3-9]|[\s\-]))"
_PERSONAL = [
    # 18-digit resident ID card (area, birth date, sequence, check digit or X).
    (re.compile(r"(?<!\d)[1-9]\d{5}[\s\-]?(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])"
                r"(?:0[1-9]|[12]\d|3[01])[\s\-]?\d{3}[\dXx](?![\dXx\d])"), "[证件号已隐藏]"),
    # Starts only where a run of name characters starts: linear time on long runs.
    (re.compile(r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]+\s*(?:@|\(at\)|\[at\])\s*"
                r"[A-Za-z0-9\-]+(?:\s*\.\s*[A-Za-z0-9\-]+)+"), "[邮箱已隐藏]"),
    # Mobile: 1[3-9] and nine more digits, optionally after +86 / 0086 / (86) / 86.
    (re.compile(rf"(?<![\d+])(?:{_CN_PREFIX}{_SEP})?1{_SEP}[3-9](?:{_D}){{9}}(?!\d)"),
     "[电话已隐藏]"),
    # Landline: area code (010, 0531; in brackets, or +86 and no 0) and a 7-8 digit number.
    (re.compile(rf"(?<![\d+])(?:\({_SEP}0\d{{2,3}}{_SEP}\)|0\d{{2,3}}|{_CN_PREFIX}{_SEP}"
                rf"\(?{_SEP}0?[1-9]\d{{1,2}}{_SEP}\)?){_SEP}\d(?:{_D}){{5,6}}{_D}(?!\d)"),
     "[电话已隐藏]"),
]
_CHINESE_DIGITS = str.maketrans("〇零一二三四五六七八九幺", "001234567891")


def redact(description: str) -> str:
    """`description` with phone numbers, e-mail addresses and ID-card numbers masked."""
    for pattern, mask in _PERSONAL:
        matching, origin = _matching_copy(description)
        # Replace from the end so the earlier spans of the original text stay where they are.
        for found in reversed(list(pattern.finditer(matching))):
            start, end = origin[found.start()], origin[found.end() - 1] + 1
            description = description[:start] + mask + description[end:]
    return description


def _matching_copy(text_: str) -> tuple[str, list[int]]:
    """The text the patterns see, and for each of its characters the index it came from.

    Normalised one character at a time, so a match maps back onto the text as typed and the
    rest of the description is published unchanged (NFKC of the whole text would also turn
    ①, ㎡ or full-width letters into something the reporter did not write).
    """
    chars: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text_):
        normal = unicodedata.normalize("NFKC", char).translate(_CHINESE_DIGITS)
        chars.append(normal)
        origin.extend([index] * len(normal))
    return "".join(chars), origin
