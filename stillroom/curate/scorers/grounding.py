"""How much of the answer the chunk supports: character n-gram overlap, which needs no Chinese word segmentation."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from stillroom.curate.scorers import SCORERS, ItemView, Score, Scorer
from stillroom.curate.scorers._grams import Texts, overlaps
from stillroom.curate.scorers._text import Page, gram_size, ngrams, sentences, shared_page

_SOURCE_SIZES = (2, 4)  # a Chinese answer (bigrams) and an English one (4-grams) check against the same set
_ALL_SUPPORTED = 0.95   # above this, no sentence is listed as unsupported


@lru_cache(maxsize=1024)
def _source_grams(source: str) -> frozenset[str]:
    """Cached because a chunk usually has several items."""
    return frozenset().union(*(ngrams(source, n) for n in _SOURCE_SIZES))


@SCORERS.register("grounding")
class Grounding(Scorer):
    version = 1

    def score(self, item: ItemView) -> Score | None:
        if item.source is None or item.source_missing:
            return None  # numeric_fidelity already fails an item whose chunk is gone
        source = _source_grams(item.source)
        answer = item.answer_grams(gram_size(item.assistant_text))
        if not answer:
            return Score(0.0, {"overlap": 0.0, "unsupported": []})
        overlap = len(answer & source) / len(answer)
        unsupported = []
        # A sentence far below the threshold drags the whole answer down with it: skip the per-sentence pass
        # for answers that are nearly all supported (most of them, and the pass costs as much as the rest).
        for sentence in sentences(item.assistant_text) if overlap < _ALL_SUPPORTED else ():
            grams = ngrams(sentence)
            if len(grams) >= 4 and len(grams & source) / len(grams) < self.settings.grounding_unsupported_below:
                unsupported.append(sentence[:200])
        return Score(overlap, {"overlap": round(overlap, 4), "unsupported": unsupported[:5]})

    def score_many(self, items: list[ItemView]) -> list[Score | None]:
        """The same overlaps for a page in one numpy pass: answers and their sentences against their chunks."""
        todo = [i for i, item in enumerate(items) if item.source is not None and not item.source_missing]
        sources: dict[str, int] = {}
        chunk = np.array([sources.setdefault(items[i].source, len(sources)) for i in todo], np.int64)
        page = shared_page([item.assistant_text for item in items])
        # Sentences are needed only for answers below _ALL_SUPPORTED, unknown yet: splitting all costs less
        # than a second pass over the chunks.
        owner, first, end = page.sentences()
        k_of = np.full(len(items), -1, np.int64)
        k_of[todo] = np.arange(len(todo))
        owner = k_of[owner]
        first, end, owner = first[owner >= 0], end[owner >= 0], owner[owner >= 0]
        texts = page.normalised(np.concatenate((page.start[todo], first)), np.concatenate((page.end[todo], end)))
        sizes = np.where(np.concatenate((page.has_cjk()[todo], page.has_cjk(first, end, normalised=True))), 2, 4)
        probes, sizes, target, group, alone = _probes(texts, sizes, owner, chunk, page.context()[todo])
        # only the gram sizes some probe of the chunk uses; a probe shorter than its gram size is one gram,
        # which may be a chunk's bigram
        want = np.zeros((2, len(sources)), bool)
        want[0, target[(sizes == 2) | (probes.length < sizes)]] = True
        want[1, target[sizes == 4]] = True
        has, which = np.nonzero(want)
        try:
            found = overlaps(probes, sizes, Page(list(sources)).normalised(), (which, 2 + 2 * has), target,
                             groups=group, n_groups=len(todo))
        except OverflowError:  # a text with tens of thousands of distinct characters: one at a time
            return super().score_many(items)
        k = len(owner)
        counts, hits = found.group_counts, found.group_hits
        counts[alone], hits[alone] = found.counts[k:k + len(alone)], found.hits[k:k + len(alone)]
        unsupported = self._unsupported(owner, (page.joined, first, end), counts, hits, found.counts[:k],
                                        found.hits[:k])
        seen: dict[tuple[int, int], Score] = {}  # equal outcomes share one (never mutated) Score
        out: list[Score | None] = [None] * len(items)
        for k, (i, n, h) in enumerate(zip(todo, counts.tolist(), hits.tolist())):
            if k in unsupported:
                overlap = h / n
                out[i] = Score(overlap, {"overlap": round(overlap, 4), "unsupported": unsupported[k][:5]})
            elif (score := seen.get((n, h))) is not None:
                out[i] = score
            else:
                overlap = h / n if n else 0.0
                out[i] = seen[n, h] = Score(overlap, {"overlap": round(overlap, 4) if n else 0.0, "unsupported": []})
        return out

    def _unsupported(self, owner, sentences, answer_n, answer_h, n, h) -> dict[int, list[str]]:
        """The sentences listed as unsupported, by answer: those of answers below _ALL_SUPPORTED whose own overlap
        is below the setting. `sentences`: the joined answers, and each sentence's span of it."""
        with np.errstate(divide="ignore", invalid="ignore"):
            low = (n >= 4) & (h / n < self.settings.grounding_unsupported_below)
            low &= (answer_n[owner] > 0) & (answer_h[owner] / answer_n[owner] < _ALL_SUPPORTED)
        joined, first, end = sentences
        out: dict[int, list[str]] = {}
        for k, a, b in zip(owner[low].tolist(), first[low].tolist(), np.minimum(end[low], first[low] + 200).tolist()):
            out.setdefault(k, []).append(joined[a:b])
        return out


def _probes(texts: Texts, sizes: np.ndarray, owner: np.ndarray, chunk: np.ndarray, context: np.ndarray):
    """The probes for `overlaps`: each sentence; and each answer either as a group (its sentences and the grams
    across their boundaries) or, where that would not give its own grams, on its own after the sentences (their
    numbers are returned). `texts` and `sizes`: the answers', then the sentences'."""
    m = len(chunk)
    a_size, s_size, a_len, s_len = sizes[:m], sizes[m:], texts.length[:m], texts.length[m:]
    s_at = texts.start[m:]
    # An answer's normalised text is its sentences' joined (whitespace between them is dropped anyway) unless a
    # character is normalised by its neighbours; its grams are theirs and those across their boundaries when each
    # sentence (but an empty one) has the answer's gram size and at least that many characters.
    alone = context.copy()
    alone[owner[(s_len > 0) & ((s_size != a_size[owner]) | (s_len < a_size[owner]))]] = True
    solid = np.flatnonzero(s_len > 0)
    o = owner[solid]
    pair = (o[1:] == o[:-1]) & ~alone[o[1:]]
    across, n = o[1:][pair], a_size[o[1:][pair]]
    solo = np.flatnonzero(alone)
    probes = Texts(texts.codes, np.concatenate((s_at, texts.start[:m][solo], s_at[solid[1:][pair]] - n + 1)),
                   np.concatenate((s_len, a_len[solo], 2 * n - 2)))
    target = np.concatenate((chunk[owner], chunk[solo], chunk[across]))
    group = np.concatenate((np.where(alone[owner], -1, owner), np.full(len(solo), -1), across))
    return probes, np.concatenate((s_size, a_size[solo], n)), target, group, solo
