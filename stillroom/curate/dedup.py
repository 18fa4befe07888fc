"""Duplicates: exact (hash of the normalised question + answer) and near (MinHash + LSH over character shingles).

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

from stillroom.curate.scorers._grams import sorted_unique
from stillroom.curate.state import CURRENT_REVISION

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
hashed AS (SELECT id, norm, score, md5(norm) AS h FROM txt WHERE norm <> '')
SELECT id, norm, score, count(*) OVER w AS n_same, first_value(id) OVER (w ORDER BY score DESC, id) AS exact_rep, h
FROM hashed
WINDOW w AS (PARTITION BY h)
ORDER BY id
"""
_MAX = np.uint32(0xFFFFFFFF)
_BLOCK = 20_000  # documents per signature block: bounds the shingle arrays to ~100 MB


def find_duplicates(store: Any, settings: Any) -> dict:
    """Rebuild the `duplicates` table; returns counts (items in groups, groups) for exact and near duplicates."""
    cfg = getattr(settings, "curate", settings)
    started = time.monotonic()
    with store.session():
        with store.connect() as con:
            cur = con.cursor()
            try:
                rows = cur.execute(_BASE).fetchnumpy()
            finally:
                cur.close()
        ids, reps = rows["id"], rows["exact_rep"]
        exact = rows["n_same"] > 1
        timings = {"exact_s": round(time.monotonic() - started, 2)}
        keep = np.flatnonzero(ids == reps)  # one text per exact group goes on to the near-duplicate search
        near_rows = _near_groups(ids[keep], rows["norm"][keep], np.asarray(rows["score"])[keep], cfg)
        timings["near_s"] = round(time.monotonic() - started - timings["exact_s"], 2)
        exact_batch = {"item_id": ids[exact], "group_id": np.array(["exact:" + h[:16] for h in rows["h"][exact]],
                                                                      dtype=object),
                       "representative_id": reps[exact], "similarity": np.ones(int(exact.sum()))}
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
        "items": len(ids),
        "exact": {"items": int(exact.sum()), "groups": len(set(reps[exact]))},
        "near": {"items": len(near_rows["item_id"]), "groups": len(set(near_rows["representative_id"]))},
        "seconds": round(time.monotonic() - started, 2), **timings,
    }


def signatures(texts: np.ndarray, shingle: int, num_perm: int) -> tuple[np.ndarray, np.ndarray]:
    """(signatures uint32[n, num_perm], has_shingles bool[n]) for normalised texts."""
    sig = np.full((len(texts), num_perm), _MAX, dtype=np.uint32)
    for lo in range(0, len(texts), _BLOCK):
        block = texts[lo:lo + _BLOCK]
        lens = np.fromiter((len(t) for t in block), dtype=np.int64, count=len(block))
        cps = np.frombuffer("".join(block).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
        n_valid = np.maximum(lens - shingle + 1, 0)
        if n_valid.sum() == 0:
            continue
        doc = np.repeat(np.arange(len(block)), n_valid)
        starts = np.repeat(np.cumsum(lens) - lens, n_valid)
        pos = starts + np.arange(len(doc)) - np.repeat(np.cumsum(n_valid) - n_valid, n_valid)
        h = np.zeros(len(doc), dtype=np.uint64)
        with np.errstate(over="ignore"):
            for j in range(shingle):
                h = (h ^ cps[pos + j]) * np.uint64(0x100000001B3)
            h = _mix(h)
        part = sig[lo:lo + len(block)]  # a view: filled in place
        np.minimum.at(part.reshape(-1), doc * num_perm + (h % np.uint64(num_perm)).astype(np.int64),
                      (h >> np.uint64(32)).astype(np.uint32))
        _densify(part, (part != _MAX).any(axis=1))
    return sig, (sig != _MAX).any(axis=1)


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: spreads FNV's weak low bits so bins and values are independent."""
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


def _densify(sig: np.ndarray, has: np.ndarray) -> None:
    """An empty bin borrows the next non-empty bin to its right (salted by distance), so short texts
    still compare bin for bin (Shrivastava's densified one-permutation hashing)."""
    empty = (sig == _MAX) & has[:, None]
    shift = 1
    while empty.any() and shift < sig.shape[1]:
        donor = np.roll(sig, -shift, axis=1)
        take = empty & (donor != _MAX) & (np.roll(empty, -shift, axis=1) == False)  # noqa: E712
        sig[take] = donor[take] ^ np.uint32((0x9E3779B1 * shift) & 0xFFFFFFFF)
        empty &= ~take
        shift += 1


def candidate_pairs(sig: np.ndarray, rows_per_band: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i, j) sharing at least one LSH band; each bucket is linked as a star on its first member."""
    n, num_perm = sig.shape
    found = []
    for b in range(num_perm // rows_per_band if n > 1 else 0):
        h = np.full(n, b, dtype=np.uint64)
        with np.errstate(over="ignore"):
            for j in range(b * rows_per_band, (b + 1) * rows_per_band):
                h = (h ^ sig[:, j].astype(np.uint64)) * np.uint64(0x100000001B3)
        order = np.argsort(h, kind="stable")
        hs = h[order]
        first = np.r_[True, hs[1:] != hs[:-1]]
        leader = order[np.flatnonzero(first)[np.cumsum(first) - 1]]
        linked = ~first
        found.append(leader[linked] * n + order[linked])
    if not found:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    keys = sorted_unique(np.concatenate(found))
    return keys // n, keys % n


def similarity(sig: np.ndarray, a: np.ndarray, b: np.ndarray, step: int = 200_000) -> np.ndarray:
    """Estimated Jaccard similarity of each pair, a slice at a time: millions of candidate pairs would
    otherwise gather gigabytes of signature rows at once."""
    out = np.empty(len(a))
    for lo in range(0, len(a), step):
        out[lo:lo + step] = (sig[a[lo:lo + step]] == sig[b[lo:lo + step]]).mean(axis=1)
    return out


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


def _near_groups(ids: np.ndarray, texts: np.ndarray, scores: np.ndarray, cfg: Any) -> dict[str, np.ndarray]:
    sig, has = signatures(texts, cfg.dedup_shingle_chars, cfg.dedup_num_perm)
    # 4 rows per band puts the LSH threshold near 0.5, so pairs at the configured (higher) similarity are
    # almost never missed; each candidate is then checked against its estimated similarity.
    a, b = candidate_pairs(sig, 4)
    ok = has[a] & has[b]
    a, b = a[ok], b[ok]
    sim = similarity(sig, a, b)
    a, b = a[sim >= cfg.dedup_near_threshold], b[sim >= cfg.dedup_near_threshold]
    members = sorted_unique(np.concatenate([a, b]))
    if not len(members):
        empty = np.empty(0, dtype=object)
        return {"item_id": empty, "group_id": empty, "representative_id": empty, "similarity": np.empty(0)}
    local = np.searchsorted(members, np.concatenate([a, b]))
    labels = components(len(members), local[:len(a)], local[len(a):])
    # Best score first within each group; the id order of `ids` breaks ties.
    order = np.lexsort((members, -scores[members], labels))
    first = np.r_[True, labels[order][1:] != labels[order][:-1]]
    rep_of_label = dict(zip(labels[order][first], members[order][first]))
    rep = np.array([rep_of_label[lab] for lab in labels])
    return {"item_id": ids[members], "group_id": np.array(["near:" + r for r in ids[rep]], dtype=object),
            "representative_id": ids[rep], "similarity": similarity(sig, members, rep)}
