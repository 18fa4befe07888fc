"""Bytes → str for text files: detect the encoding and refuse to guess wrong silently."""

from __future__ import annotations

import codecs

from charset_normalizer import from_bytes

from stillroom.errors import ExtractError

_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# Chinese documents without a BOM are either UTF-8 or GBK/GB18030; GB18030 is a superset of GBK.
_CANDIDATES = ("gb18030", "utf-16-le", "utf-16-be", "big5", "shift_jis", "cp1252")


def decode_text(data: bytes, path: str) -> tuple[str, str]:
    """Returns (text, encoding). UTF-8 and BOMs are exact; anything else must be detected with confidence."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            return data.decode(name), name
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    if _looks_utf16(data):
        name = "utf-16-le" if data[1::2].count(0) > data[0::2].count(0) else "utf-16-be"
        return data.decode(name, errors="strict"), name
    best = from_bytes(data, cp_isolation=list(_CANDIDATES)).best()
    if best is None or best.chaos > 0.2:
        raise ExtractError(path, "cannot tell the text encoding",
                           "save it as UTF-8 (or GBK/GB18030, UTF-16 with a BOM) and ingest again")
    name = "gb18030" if best.encoding in ("gbk", "gb2312", "gb18030") else best.encoding
    return data.decode(name), name


def _looks_utf16(data: bytes) -> bool:
    """UTF-16 text without a BOM: many NUL bytes, all on one side of each pair."""
    sample = data[:4096]
    if len(sample) < 4 or len(sample) % 2:
        return False
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    return max(even, odd) > len(sample) / 8 and min(even, odd) == 0
