"""Character n-gram overlap for a whole batch at once, in numpy: the same sets `_text.ngrams` builds, as integers.

Texts come as one array of (normalised) code points. Each distinct character of the batch gets a small number
(`bits` wide) and a gram of up to four characters becomes one integer. A probe's grams are keyed (target, gram,
the probe's number among its target's probes), a target's (target, gram). Sorted, a probe's key is one of a run
of equal (target, gram), and the runs come in order: one merge with the targets' sorted keys says which are
found. Exact (a hash table only skips target grams that no probe can want): a batch whose keys do not fit 63
bits is split by target until they fit.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

_WIDTH = 4  # grams are at most 4 characters


class Texts(NamedTuple):
    """Text i is codes[start[i]:start[i] + length[i]] (texts may overlap)."""

    codes: np.ndarray   # uint32 code points
    start: np.ndarray   # int64
    length: np.ndarray  # int64


class Overlaps(NamedTuple):
    counts: np.ndarray        # distinct grams of each probe
    hits: np.ndarray          # how many of them its target has
    group_counts: np.ndarray  # the same for each group's probes together
    group_hits: np.ndarray


def overlaps(probes: Texts, probe_sizes: Sequence[int], targets: Texts,
             target_sets: tuple[Sequence[int], Sequence[int]], probe_target: Sequence[int],
             exclude: Sequence[str] = (), groups: Sequence[int] = (), n_groups: int = 0) -> Overlaps:
    """For each probe (a normalised text and a gram size): how many distinct grams it has, less those in
    `exclude`, and how many of them are among its target's grams: the union over the (target, size) pairs of
    `target_sets`. With `groups` (a group number below `n_groups`, or -1, for each probe; a group's probes share a
    target), also for the union of each group's probes."""
    n = len(probes.start)
    out = Overlaps(np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n_groups, np.int64),
                   np.zeros(n_groups, np.int64))
    if n:
        at = len(probes.codes)
        codes = np.concatenate((probes.codes, targets.codes))
        group = np.asarray(groups, np.int64) if n_groups else np.full(n, -1, np.int64)
        p = (np.asarray(probes.start, np.int64), np.asarray(probes.length, np.int64),
             np.asarray(probe_sizes, np.int64), np.asarray(probe_target, np.int64), group)
        t = (np.asarray(targets.start, np.int64) + at, np.asarray(targets.length, np.int64))
        sets = tuple(np.asarray(a, np.int64) for a in target_sets)
        _fill(codes, p, t, sets, list(exclude), np.arange(n), out)
    return out


def _fill(codes, probes, targets, sets, exclude, where, out: Overlaps) -> None:
    start, length, size, target, group = probes
    present = np.zeros(0x110000, bool)
    present.put(codes, True, mode="clip")  # faster than indexing; every code point is in range
    alphabet = np.flatnonzero(present)
    bits = max(1, int(len(alphabet) + 1).bit_length())
    per_target = np.bincount(target, minlength=len(targets[0]))
    lbits, tbits = int(per_target.max() - 1).bit_length(), (len(per_target) - 1).bit_length()
    gbits = _WIDTH * bits
    if gbits + lbits + tbits > 63:
        if len(per_target) < 2:
            raise OverflowError("one text with too many distinct characters for 64-bit gram keys")
        _split(codes, probes, targets, sets, exclude, where, out)
        return
    lut = np.zeros(0x110000, np.uint64)
    lut[alphabet] = np.arange(1, len(alphabet) + 1, dtype=np.uint64)
    grams = _Grams(lut.take(codes, mode="clip"), bits)
    # probes by target, a group's together, numbered within their target
    order = np.argsort(target * (int(group.max()) + 2) + group + 1, kind="stable")
    first = np.cumsum(per_target) - per_target
    t_sorted = target[order]
    local = np.arange(len(order)) - first[t_sorted]
    p_keys = _unique(grams.keys(start[order], length[order], size[order], (t_sorted << (gbits + lbits)) | local,
                                lbits))
    wanted = p_keys >> np.uint64(lbits)  # (target, gram): in order
    gmask = np.uint64((1 << gbits) - 1)
    if exclude:
        gone = np.sort(np.array([g for g in (_code(x, lut, bits) for x in exclude) if g is not None], np.uint64))
        if len(gone):
            gram = wanted & gmask
            pos = np.minimum(np.searchsorted(gone, gram), len(gone) - 1)
            kept = gone[pos] != gram
            p_keys, wanted = p_keys[kept], wanted[kept]
    t_own, t_size = sets
    t_keys = grams.keys(targets[0][t_own], targets[1][t_own], t_size, t_own << gbits, 0)
    if len(t_keys) > 2 * len(wanted):  # most of the targets' grams are no probe's: sort only those that may be
        t_keys = t_keys[_Filter(wanted & gmask).may_hold(t_keys & gmask)]
    new = np.ones(len(wanted), bool)  # the first key of a run of equal (target, gram)
    new[1:] = wanted[1:] != wanted[:-1]
    found = _member(wanted, new, _unique(t_keys))
    owner = first[(p_keys >> np.uint64(gbits + lbits)).view(np.int64)]
    owner += (p_keys & np.uint64((1 << lbits) - 1)).view(np.int64)
    out.counts[where[order]] = np.bincount(owner, minlength=len(order))
    out.hits[where[order]] = np.bincount(owner[found], minlength=len(order))
    if len(out.group_counts):  # a run's keys of one group are together: count the first
        member = group[order][owner]
        new[1:] |= member[1:] != member[:-1]
        new &= member >= 0
        out.group_counts[:] += np.bincount(member[new], minlength=len(out.group_counts))
        out.group_hits[:] += np.bincount(member[new & found], minlength=len(out.group_counts))


class _Grams:
    """The grams of texts in one array of dense character numbers: a gram of w characters is their numbers,
    `bits` each, the first one highest (so grams of different lengths differ too: the first number is never 0)."""

    def __init__(self, dense: np.ndarray, bits: int) -> None:
        self.by_width = [None, dense]  # by_width[w][i]: the w characters from position i
        self.bits = bits

    def keys(self, start, length, size, prefix, shift) -> np.ndarray:
        """prefix[i] | gram << shift for every gram of text i at size `size[i]` (a text no longer than the size
        is one gram), in no particular order."""
        width = np.minimum(size, length)
        m = np.where(width > 0, length - width + 1, 0)  # grams per text
        out = np.empty(int(m.sum()), np.uint64)
        at = 0
        for w in range(1, _WIDTH + 1):
            sel = np.flatnonzero(width == w)
            if not len(sel):
                continue
            n = m[sel]
            ends = np.cumsum(n)
            pos = np.arange(int(ends[-1])) + np.repeat(start[sel] - (ends - n), n)
            part = out[at:at + len(pos)]
            np.left_shift(self._width(w).take(pos), np.uint64(shift), out=part)
            part |= np.repeat(prefix[sel].astype(np.uint64), n)
            at += len(pos)
        return out

    def _width(self, w: int) -> np.ndarray:
        while len(self.by_width) <= w:
            k, prev, dense = len(self.by_width), self.by_width[-1], self.by_width[1]
            nxt = prev << np.uint64(self.bits)
            nxt[:len(dense) - k + 1] |= dense[k - 1:]
            self.by_width.append(nxt)
        return self.by_width[w]


class _Filter:
    """A set of integers as a bit table of their hashes: `may_hold` is never False for a member."""

    _BITS = 20

    def __init__(self, values: np.ndarray) -> None:
        self.table = np.zeros(1 << self._BITS, bool)
        self.table[self._hash(values)] = True

    def may_hold(self, values: np.ndarray) -> np.ndarray:
        return self.table[self._hash(values)]

    def _hash(self, values: np.ndarray) -> np.ndarray:
        return (values * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(64 - self._BITS)


def _unique(values: np.ndarray) -> np.ndarray:
    """`sorted_unique`, sorting `values` in place."""
    values.sort()
    return values[np.concatenate(([True], values[1:] != values[:-1]))] if len(values) else values


def _member(wanted: np.ndarray, new: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """For each of `wanted` (sorted; `new` marks the first of equal ones): is it in `keys` (sorted, distinct)?
    The distinct wanted are merged with the keys (a stable sort of two sorted runs is one merge): a key lands just
    before its equal."""
    if not len(wanted) or not len(keys):
        return np.zeros(len(wanted), bool)
    at = np.flatnonzero(new)
    both = np.concatenate((keys << np.uint64(1), (wanted[at] << np.uint64(1)) | np.uint64(1)))
    both.sort(kind="stable")
    hit = np.zeros(len(both), bool)
    hit[1:] = both[1:] == both[:-1] + np.uint64(1)
    return np.repeat(hit[(both & np.uint64(1)).astype(bool)], np.diff(np.append(at, len(wanted))))


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values, as `np.unique` gives them; numpy 2's `unique` hashes integers, which is several
    times slower than a sort on these keys (and on dedup's millions of candidate pairs)."""
    values = np.sort(values)
    return values[np.concatenate(([True], values[1:] != values[:-1]))] if len(values) else values


def _code(gram: str, lut: np.ndarray, bits: int) -> int | None:
    code = 0
    for ch in gram:
        d = int(lut[ord(ch)])
        if not d:
            return None  # a character no text of the batch has: the gram cannot occur
        code = code << bits | d
    return code


def _split(codes, probes, targets, sets, exclude, where, out: Overlaps) -> None:
    """Half the targets at a time, each half with its probes and only their characters."""
    start, length, size, target, group = probes
    half = len(targets[0]) // 2
    for lo, hi in ((0, half), (half, len(targets[0]))):
        p = np.flatnonzero((target >= lo) & (target < hi))
        if not len(p):
            continue
        s = np.flatnonzero((sets[0] >= lo) & (sets[0] < hi))
        p_codes, p_start = _compact(codes, start[p], length[p])
        t_codes, t_start = _compact(codes, targets[0][lo:hi], targets[1][lo:hi])
        _fill(np.concatenate((p_codes, t_codes)), (p_start, length[p], size[p], target[p] - lo, group[p]),
              (t_start + len(p_codes), targets[1][lo:hi]), (sets[0][s] - lo, sets[1][s]), exclude, where[p], out)


def _compact(codes, start, length) -> tuple[np.ndarray, np.ndarray]:
    ends = np.cumsum(length)
    idx = np.arange(int(ends[-1]) if len(ends) else 0) + np.repeat(start - (ends - length), length)
    return codes[idx], ends - length
