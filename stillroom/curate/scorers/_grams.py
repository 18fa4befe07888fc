"""Character n-gram overlap for a whole batch at once, in numpy: the same sets `_text.ngrams` builds, as integers.

Every text of a batch is turned into code points, each distinct character of the batch gets a small number
(`bits` wide), and a gram of up to four characters becomes one integer (shorter grams are padded with 0, which
no character has), prefixed with the number of the text it belongs to. Sets are then sorted unique arrays and
"how many of this text's grams are in that one's" is one `searchsorted`. Exact, not hashed: a batch whose
alphabet is too large for the key to fit 64 bits is split until it fits.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

_WIDTH = 4  # grams are at most 4 characters


def overlaps(probes: Sequence[str], probe_sizes: Sequence[int], targets: Sequence[str],
             target_sizes: Sequence[tuple[int, ...]], probe_target: Sequence[int],
             exclude: Sequence[str] = ()) -> tuple[np.ndarray, np.ndarray]:
    """For each probe (a normalised text and a gram size): how many distinct grams it has, less those in
    `exclude`, and how many of them are among its target's grams (the union over the target's sizes)."""
    n = len(probes)
    counts, hits = np.zeros(n, np.int64), np.zeros(n, np.int64)
    if n:
        _fill(list(probes), np.asarray(probe_sizes, np.int64), list(targets), list(target_sizes),
              np.asarray(probe_target, np.int64), list(exclude), np.arange(n), counts, hits)
    return counts, hits


def _fill(probes, psize, targets, tsizes, ptarget, exclude, where, counts, hits) -> None:
    texts = probes + targets
    joined = "".join(texts)
    cps = np.frombuffer(joined.encode("utf-32-le"), np.uint32)
    present = np.zeros(0x110000, bool)
    present[cps] = True
    alphabet = np.flatnonzero(present)
    bits = max(1, int(len(alphabet) + 1).bit_length())
    owner_bits = max(len(probes), len(targets), 1).bit_length()
    if _WIDTH * bits + owner_bits > 63:
        if len(targets) < 2:
            raise OverflowError("one text with too many distinct characters for 64-bit gram keys")
        _split(probes, psize, targets, tsizes, ptarget, exclude, where, counts, hits)
        return
    dense = np.zeros(len(cps) + _WIDTH, np.uint64)
    lut = np.zeros(0x110000, np.uint64)
    lut[alphabet] = np.arange(1, len(alphabet) + 1, dtype=np.uint64)
    dense[:len(cps)] = lut[cps]
    lens = np.fromiter(map(len, texts), np.int64, len(texts))
    starts = np.concatenate(([0], np.cumsum(lens)[:-1]))
    full = np.zeros(len(cps) + 1, np.uint64)  # the 4-character window starting at each position
    for k in range(_WIDTH):
        full[:len(cps) + 1] |= dense[k:k + len(cps) + 1] << np.uint64(bits * (_WIDTH - 1 - k))
    np_ = len(probes)
    p_keys = _keys(full, starts[:np_], lens[:np_], np.arange(np_), psize, bits)
    t_own = np.fromiter((i for i, ss in enumerate(tsizes) for _ in ss), np.int64)
    t_size = np.fromiter((s for ss in tsizes for s in ss), np.int64, len(t_own))
    t_keys = sorted_unique(_keys(full, starts[np_:], lens[np_:], t_own, t_size, bits))
    shift, mask = np.uint64(_WIDTH * bits), np.uint64((1 << (_WIDTH * bits)) - 1)
    p_keys = sorted_unique(p_keys)
    if exclude:
        gone = [_code(g, lut, bits) for g in exclude]
        gone = np.array([g for g in gone if g is not None], np.uint64)
        p_keys = p_keys[~np.isin(p_keys & mask, gone)]
    owner = (p_keys >> shift).astype(np.int64)
    wanted = (ptarget[owner].astype(np.uint64) << shift) | (p_keys & mask)
    pos = np.searchsorted(t_keys, wanted)
    found = pos < len(t_keys)
    found[found] = t_keys[pos[found]] == wanted[found]
    counts[where] = np.bincount(owner, minlength=np_)
    hits[where] = np.bincount(owner[found], minlength=np_)


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values, as `np.unique` gives them; numpy 2's `unique` hashes integers, which is several
    times slower than a sort on these keys (and on dedup's millions of candidate pairs)."""
    values = np.sort(values)
    return values[np.concatenate(([True], values[1:] != values[:-1]))] if len(values) else values


def _keys(full, starts, lens, own, size, bits) -> np.ndarray:
    """owner << (4 * bits) | gram, for every gram of text `own[i]` at size `size[i]`; a text no longer than the
    size is one gram."""
    own, size = np.asarray(own, np.int64), np.asarray(size, np.int64)
    ln, st = lens[own], starts[own]
    m = np.where(ln > size, ln - size + 1, (ln > 0).astype(np.int64))  # windows per (text, size)
    total = int(m.sum())
    first = np.repeat(np.cumsum(m) - m, m)
    pos = np.repeat(st, m) + (np.arange(total) - first)
    width = np.repeat(np.minimum(size, ln), m)  # chars kept in each window
    drop = (np.uint64(_WIDTH) - width.astype(np.uint64)) * np.uint64(bits)
    grams = (full[pos] >> drop) << drop
    return (np.repeat(own, m).astype(np.uint64) << np.uint64(_WIDTH * bits)) | grams


def _code(gram: str, lut: np.ndarray, bits: int) -> int | None:
    code = 0
    for k, ch in enumerate(gram):
        d = int(lut[ord(ch)])
        if not d:
            return None  # a character no text of the batch has: the gram cannot occur
        code |= d << (bits * (_WIDTH - 1 - k))
    return code


def _split(probes, psize, targets, tsizes, ptarget, exclude, where, counts, hits) -> None:
    half = len(targets) // 2
    for lo, hi in ((0, half), (half, len(targets))):
        sel = np.flatnonzero((ptarget >= lo) & (ptarget < hi))
        _fill([probes[i] for i in sel], psize[sel], targets[lo:hi], tsizes[lo:hi], ptarget[sel] - lo, exclude,
              where[sel], counts, hits)
