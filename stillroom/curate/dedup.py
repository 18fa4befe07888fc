"""Duplicates: exact (the same normalised question + answer) and near (MinHash + LSH over character shingles).

Character shingles need no word segmentation, so Chinese works as well as English. Every item of the
store takes part, so duplicates are found within a run and across runs. Group members point to the
best-scoring representative; nothing is deleted — the `duplicates` table is rebuilt on each call.

The MinHash is one-permutation hashing with densification, in numpy: each shingle is hashed once and
lands in one of `num_perm` bins, which keeps the cost linear in the text and independent of the
signature length (a classic k-permutation MinHash costs num_perm passes over every shingle).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from stillroom.curate.arrow_text import utf8_data
from stillroom.curate.scorers._grams import sorted_unique
from stillroom.curate.state import CURRENT_REVISION

# Exact duplicates are grouped on the normalised text itself; md5 only names the groups that have several members.
_BASE = "WITH cur AS (" + CURRENT_REVISION + """),
overall AS (SELECT item_id, revision, max(value) AS value FROM scores WHERE scorer = 'overall' GROUP BY ALL),
txt AS MATERIALIZED (  -- else the regexp runs once per use of `norm`
    SELECT i.id, coalesce(ov.value, -1.0) AS score,
           regexp_replace(lower(coalesce(r.question, i.question, '') || ' ' || coalesce(r.answer, i.answer, '')),
                          '[\\s\\p{P}\\p{S}]+', '', 'g') AS norm
    FROM items i LEFT JOIN cur ON cur.item_id = i.id
    LEFT JOIN item_revisions r ON r.item_id = i.id AND r.revision = cur.revision
    LEFT JOIN overall ov ON ov.item_id = i.id AND ov.revision = coalesce(cur.revision, 0)
),
grp AS (  -- the best score, then the smallest id, represents a group (a GROUP BY costs less than a window here)
    SELECT norm, count(*) AS n_same, arg_min(id, (-score, id)) AS exact_rep FROM txt WHERE norm <> '' GROUP BY norm
),
grouped AS (SELECT id, norm, score, n_same, exact_rep FROM txt JOIN grp USING (norm))
SELECT id, norm, score, n_same, exact_rep, CASE WHEN n_same > 1 THEN 'exact:' || md5(norm)[:16] END AS group_id
FROM grouped ORDER BY id <> exact_rep, id  -- the representatives first (in id order): the near search reads a slice
"""
_MAX = np.uint32(0xFFFFFFFF)
_FNV = np.uint64(0x100000001B3)
_BLOCK = 5_000  # documents per signature block: the shingle arrays (~4 MB each) stay in the CPU's cache


def find_duplicates(store: Any, settings: Any) -> dict:
    """Rebuild the `duplicates` table; returns counts (items in groups, groups) for exact and near duplicates."""
    cfg = getattr(settings, "curate", settings)
    started = time.monotonic()
    with store.session():
        with store.connect() as con:
            cur = con.cursor()
            try:
                rows = cur.sql(_BASE).to_arrow_table()  # Arrow: a million texts never become Python strings
            finally:
                cur.close()
        exact = rows["n_same"].to_numpy() > 1
        timings = {"exact_s": round(time.monotonic() - started, 2)}
        n_reps = int(pc.sum(pc.equal(rows["id"], rows["exact_rep"])).as_py() or 0)
        reps = rows.slice(0, n_reps)  # one text per exact group goes on to the near-duplicate search
        near_rows = _near_groups(reps["id"], reps["norm"], reps["score"].to_numpy(), cfg)
        timings["near_s"] = round(time.monotonic() - started - timings["exact_s"], 2)
        exact_rows = rows.filter(pa.array(exact))
        exact_batch = pa.table({"item_id": exact_rows["id"], "group_id": exact_rows["group_id"],
                                "representative_id": exact_rows["exact_rep"],
                                "similarity": np.ones(exact_rows.num_rows)})
        with store.transaction() as con:
            con.execute("DELETE FROM duplicates")
            for kind, batch in (("exact", exact_batch), ("near", near_rows)):
                con.register("dup_batch", batch)
                try:
                    con.execute("INSERT INTO duplicates (item_id, kind, group_id, representative_id, similarity) "
                                "SELECT item_id, ?, group_id, representative_id, similarity FROM dup_batch", [kind])
                finally:
                    con.unregister("dup_batch")
    return {
        "items": rows.num_rows,
        "exact": {"items": int(exact.sum()), "groups": len(pc.unique(exact_rows["exact_rep"]))},
        "near": {"items": near_rows.num_rows, "groups": len(pc.unique(near_rows["representative_id"]))},
        "seconds": round(time.monotonic() - started, 2), **timings,
    }


def signatures(texts: Any, shingle: int, num_perm: int) -> tuple[np.ndarray, np.ndarray]:
    """(signatures uint32[n, num_perm], has_shingles bool[n]) for normalised texts (strings or Arrow strings)."""
    if not isinstance(texts, (pa.Array, pa.ChunkedArray)):
        texts = pa.array(texts, pa.string())
    sig = np.full((len(texts), num_perm), _MAX, dtype=np.uint32)
    for lo in range(0, len(texts), _BLOCK):
        _sign_block(texts.slice(lo, _BLOCK), shingle, sig[lo:lo + _BLOCK])
    return sig, (sig != _MAX).any(axis=1)


def _sign_block(block: pa.Array | pa.ChunkedArray, shingle: int, part: np.ndarray) -> None:
    """Fill `part` (a view of the signatures) with the block's signatures."""
    num_perm = part.shape[1]
    cps, lens = _code_points(block)
    n_valid = np.maximum(lens - shingle + 1, 0)
    if n_valid.sum() == 0:
        return
    # hash the shingle at every position of the joined block (slices, not gathers), then keep those inside a text
    m = len(cps) - shingle + 1
    h = cps[:m].astype(np.uint64)
    with np.errstate(over="ignore"):
        h *= _FNV
        for j in range(1, shingle):
            h ^= cps[j:j + m]
            h *= _FNV
    inside = np.ones(len(cps), dtype=bool)
    ends = np.cumsum(lens)
    for j in range(1, shingle):
        inside[ends[lens >= j] - j] = False
    h = _mix(h[inside[:m]])
    halves = h.view(np.uint32)  # little-endian: the low then the high 32 bits of each hash
    slot = np.repeat(np.arange(len(lens)) * num_perm, n_valid)
    if num_perm & (num_perm - 1) == 0:  # a power of two: a mask, not a (slow) 64-bit modulo
        slot += halves[0::2] & np.uint32(num_perm - 1)
    else:
        slot += (h % np.uint64(num_perm)).astype(np.int64)
    np.minimum.at(part.reshape(-1), slot, halves[1::2])
    _densify(part, (part != _MAX).any(axis=1))


def _code_points(block: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(code points of the block's texts joined; characters per text), without a Python string per text."""
    chunks = block.chunks if isinstance(block, pa.ChunkedArray) else [block]
    joined = "".join(str(utf8_data(chunk), "utf-8") for chunk in chunks)
    cps = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32)
    return cps, pc.utf8_length(block).to_numpy().astype(np.int64)


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, in place: spreads FNV's weak low bits so bins and values are independent."""
    tmp = np.empty_like(h)
    with np.errstate(over="ignore"):
        for mul in (0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53, None):
            h ^= np.right_shift(h, np.uint64(33), out=tmp)
            if mul is not None:
                h *= np.uint64(mul)
    return h


def _densify(sig: np.ndarray, has: np.ndarray) -> None:
    """An empty bin borrows the next non-empty bin to its right (salted by distance), so short texts
    still compare bin for bin (Shrivastava's densified one-permutation hashing). Round `shift` looks
    `shift` bins ahead and sees bins filled in earlier rounds; only the still-empty bins are visited."""
    p = sig.shape[1]
    flat, empty = sig.reshape(-1), ((sig == _MAX) & has[:, None]).reshape(-1)
    pos = np.flatnonzero(empty)
    row, col = pos - pos % p, pos % p
    shift = 1
    while len(pos) and shift < p:
        donor = row + (col + shift) % p
        take = (flat[donor] != _MAX) & ~empty[donor]
        flat[pos[take]] = flat[donor[take]] ^ np.uint32((0x9E3779B1 * shift) & 0xFFFFFFFF)
        empty[pos[take]] = False
        pos, row, col = pos[~take], row[~take], col[~take]
        shift += 1


def candidate_pairs(sig: np.ndarray, rows_per_band: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i, j) sharing at least one LSH band; each bucket is linked as a star on its smallest member."""
    n, num_perm = sig.shape
    found = []
    for b in range(num_perm // rows_per_band if n > 1 else 0):
        band = np.ascontiguousarray(sig[:, b * rows_per_band:(b + 1) * rows_per_band])  # faster than strided columns
        h = np.full(n, b, dtype=np.uint64)
        with np.errstate(over="ignore"):
            for j in range(rows_per_band):
                h ^= band[:, j]
                h *= _FNV
        order = np.argsort(h)  # not stable (much faster): the leader is each bucket's minimum instead
        hs = h[order]
        starts = np.flatnonzero(np.r_[True, hs[1:] != hs[:-1]])
        leader = np.repeat(np.minimum.reduceat(order, starts), np.diff(np.r_[starts, n]))
        linked = order != leader
        found.append(leader[linked] * n + order[linked])
    if not found:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.divmod(sorted_unique(np.concatenate(found)), n)


def similarity(sig: np.ndarray, a: np.ndarray, b: np.ndarray, step: int = 50_000) -> np.ndarray:
    """Estimated Jaccard similarity of each pair, a slice at a time: millions of candidate pairs would
    otherwise gather gigabytes of signature rows at once."""
    return _matches(sig, a, b, step) / sig.shape[1]


def _matches(sig: np.ndarray, a: np.ndarray, b: np.ndarray, step: int = 50_000) -> np.ndarray:
    out = np.empty(len(a), dtype=np.int64)
    for lo in range(0, len(a), step):  # np.take gathers rows about twice as fast as sig[a]
        out[lo:lo + step] = np.count_nonzero(np.take(sig, a[lo:lo + step], axis=0) ==
                                             np.take(sig, b[lo:lo + step], axis=0), axis=1)
    return out


def _similar_pairs(sig: np.ndarray, a: np.ndarray, b: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """The pairs at `threshold` or above. Most candidates share one band and little else: the first half of
    the signature rules them out (even all of the second half matching would not reach the threshold)."""
    num_perm, half = sig.shape[1], sig.shape[1] // 2
    maybe = (_matches(np.ascontiguousarray(sig[:, :half]), a, b) + (num_perm - half)) / num_perm >= threshold
    a, b = a[maybe], b[maybe]
    ok = similarity(sig, a, b) >= threshold
    return a[ok], b[ok]


def components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Connected-component labels (the smallest index in each component) by min-label propagation."""
    labels = np.arange(n)
    while True:
        m = np.minimum(labels[a], labels[b])
        new = labels.copy()
        np.minimum.at(new, a, m)
        np.minimum.at(new, b, m)
        new = new[new]
        if np.array_equal(new, labels):
            return labels
        labels = new


def _near_groups(ids: pa.Array, texts: pa.Array, scores: np.ndarray, cfg: Any) -> pa.Table:
    sig, has = signatures(texts, cfg.dedup_shingle_chars, cfg.dedup_num_perm)
    # 4 rows per band puts the LSH threshold near 0.5, so pairs at the configured (higher) similarity are
    # almost never missed; each candidate is then checked against its estimated similarity.
    a, b = candidate_pairs(sig, 4)
    ok = has[a] & has[b]
    a, b = _similar_pairs(sig, a[ok], b[ok], cfg.dedup_near_threshold)
    members = sorted_unique(np.concatenate([a, b]))
    local = np.searchsorted(members, np.concatenate([a, b]))
    labels = components(len(members), local[:len(a)], local[len(a):])
    # Best score first within each group; the id order of `ids` breaks ties.
    order = np.lexsort((members, -scores[members], labels))
    first = np.r_[True, labels[order][1:] != labels[order][:-1]] if len(order) else np.empty(0, bool)
    rep_of_label = np.empty(len(members), dtype=np.int64)
    rep_of_label[labels[order][first]] = members[order][first]
    rep = rep_of_label[labels]
    rep_ids = ids.take(rep)
    return pa.table({"item_id": ids.take(members), "group_id": pc.binary_join_element_wise("near:", rep_ids, ""),
                     "representative_id": rep_ids, "similarity": similarity(sig, members, rep)})
