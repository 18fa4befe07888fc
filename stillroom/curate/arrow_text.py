"""Text in Arrow string arrays, read where Arrow holds it: no Python string per value."""

from __future__ import annotations

from typing import Any


def utf8_data(array: Any) -> memoryview:
    """The UTF-8 bytes of a string (or large_string) array's values, end to end, as Arrow stores them."""
    import pyarrow as pa

    _, offsets, data = array.buffers()
    if data is None or not len(array):
        return memoryview(b"")
    at = memoryview(offsets).cast("q" if array.type == pa.large_string() else "i")
    return memoryview(data)[at[array.offset]:at[array.offset + len(array)]]
