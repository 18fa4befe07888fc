"""Curation at scale: score + exact dedup + near dedup + sampling + export (openai JSONL, Parquet) on generated items.

    python bench/curate_scale.py [--sizes 100000,300000,1000000] [--keep DIR]

Items come with ~500-character Chinese source chunks (five items per chunk), figures in most answers,
some of them altered, 5% exact duplicates (same text up to spaces and punctuation) and 5% near
duplicates (a few characters changed). Prints wall time per step, peak memory (this process and its
worker processes) and the recall of the planted near duplicates, for each size. Generation and loading
are not timed. Targets at 1M on 2 cores: whole pass ≤ 60 s, ≤ 4 GiB, near-dup recall ≥ 0.95.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from stillroom.curate.dedup import find_duplicates
from stillroom.curate.scoring import score_items
from stillroom.project import init_project

CLAUSES = [
    ("住宿费报销上限为每晚{a}元", "出差住宿费每晚的报销上限是多少？", "每晚不超过{a}元。"),
    ("全年累计报销不超过{b}万元", "全年累计最多可以报销多少？", "全年累计不超过{b}万元。"),
    ("报销须在出差结束后{d}日内提交", "报销材料需要在多长时间内提交？", "应在出差结束后{d}日内提交。"),
    ("逾期提交的扣减{p}%", "逾期提交报销材料会怎样？", "逾期提交的将扣减{p}%。"),
    ("本办法自{y}年{m}月{day}日起施行", "本办法什么时候开始施行？", "本办法自{y}年{m}月{day}日起施行。"),
    ("交通补贴标准为每天{t}元", "交通补贴每天多少钱？", "交通补贴为每天{t}元。"),
    ("单次培训人数不得超过{n}人", "单次培训最多可以有多少人参加？", "单次培训不得超过{n}人。"),
]
WORDS = ["报销", "审批", "财务", "部门", "票据", "出差", "住宿", "交通", "标准", "规定", "执行", "审核", "单据", "预算",
         "合同", "采购", "付款", "发票", "签字", "负责人", "员工", "申请", "材料", "凭证", "核对", "归档", "备案", "说明"]
FILLER = "各部门应当严格执行本办法的规定，财务部门负责审核报销单据的真实性、合法性和完整性，对不符合规定的支出不予报销。"


def values(r: random.Random) -> dict:
    return {"a": r.randrange(300, 1500, 50), "b": r.randint(2, 9), "d": r.choice([10, 15, 20, 30]),
            "p": r.choice([5, 10, 20]), "y": r.choice([2023, 2024, 2025]), "m": r.randint(1, 12),
            "day": r.randint(1, 28), "t": r.randrange(50, 200, 10), "n": r.randrange(20, 200, 10)}


def generate(n_items: int, seed: int = 1) -> tuple[dict, dict, list[tuple[int, int]]]:
    """Column arrays for chunks and items, and the planted near-duplicate pairs (item indices)."""
    r = random.Random(seed)
    chunk_ids, chunk_docs, chunk_texts = [], [], []
    items = {k: [] for k in ("id", "chunk_id", "question", "answer", "messages")}
    planted = []
    n_unique = int(n_items * 0.90)
    per_chunk = 5
    for c in range(0, n_unique, per_chunk):
        v = values(r)
        clauses = r.sample(CLAUSES, 5)
        text = "".join(f"第{i + 1}条 {cl[0].format(**v)}。{FILLER}" for i, cl in enumerate(clauses))[:520]
        cid = f"chk_{c:010d}"
        chunk_ids.append(cid)
        chunk_docs.append(f"doc_{c // 200:06d}")
        chunk_texts.append(text)
        for k in range(min(per_chunk, n_unique - c)):
            _, q, a = clauses[k % len(clauses)]
            w = dict(v)
            if r.random() < 0.08:  # an invented figure
                key = r.choice([x for x in w if "{" + x + "}" in a] or ["a"])
                w[key] = w[key] + 1
            # a few characters of variety per item, as real answers have
            qtext = f"根据第{k + 1}条，{q}（编号{c + k}）"
            # ~80 characters of item-specific text without figures, so unrelated items are not near duplicates
            note = "".join(r.choices(WORDS, k=r.randint(30, 45)))
            _add(items, f"itm_{c + k:010d}", cid, qtext, a.format(**w) + f"另外，{note}。")
    base = len(items["id"])
    for j in range(n_items - base):
        src = r.randrange(base)
        q, a = items["question"][src], items["answer"][src]
        if j % 2 == 0:  # exact: the same text up to spaces and punctuation
            _add(items, f"itm_x{j:010d}", items["chunk_id"][src], q.replace("，", ", "), a.replace("。", "."))
        else:  # near: a few characters changed
            chars = list(a)
            for p in r.sample(range(len(chars)), min(2, len(chars))):
                chars[p] = "之"
            _add(items, f"itm_n{j:010d}", items["chunk_id"][src], q, "".join(chars))
            planted.append((src, len(items["id"]) - 1))
    chunks = {"id": chunk_ids, "document_id": chunk_docs, "text": chunk_texts}
    return chunks, items, planted


def _add(items: dict, item_id: str, chunk_id: str, q: str, a: str) -> None:
    items["id"].append(item_id)
    items["chunk_id"].append(chunk_id)
    items["question"].append(q)
    items["answer"].append(a)
    items["messages"].append(json.dumps([{"role": "user", "content": q}, {"role": "assistant", "content": a}],
                                        ensure_ascii=False))


def load(store, chunks: dict, items: dict) -> None:
    c = {k: np.array(v, dtype=object) for k, v in chunks.items()}
    i = {k: np.array(v, dtype=object) for k, v in items.items()}
    docs = {"id": np.unique(c["document_id"])}
    with store.transaction() as con:
        con.register("d", docs)
        con.register("c", c)
        con.register("i", i)
        con.execute("INSERT INTO documents (id, file_name, format, size_bytes, n_pages, normalized, dropped_lines) "
                    "SELECT id, id || '.txt', 'txt', 1000, 1, false, 0 FROM d")
        con.execute("INSERT INTO chunks (id, document_id, seq, page_start, page_end, char_start, char_end, "
                    "heading_path, text, n_tokens, tokenizer, has_figures) "
                    "SELECT id, document_id, 0, 1, 1, 0, length(text), '', text, 300, 'bench', true FROM c")
        con.execute("INSERT INTO items (id, chunk_id, task, origin, question, answer, messages, meta) "
                    "SELECT id, chunk_id, 'qa', 'distill', question, answer, messages::JSON, '{}' FROM i")


def cpu_s() -> float:
    """CPU seconds of this process and its finished workers: the machine is shared, so wall time alone misleads."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class RssSampler:
    """Peak resident memory of this process plus its worker processes while a step runs (sampled every 50 ms).

    ru_maxrss would include generating and loading the data, which are not part of the pass."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        me = os.getpid()
        while not self._stop.wait(0.05):
            total = _rss_kib(me)
            for stat in Path("/proc").glob("[0-9]*/stat"):
                try:
                    if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == me:
                        total += _rss_kib(int(stat.parent.name))
                except (OSError, ValueError, IndexError):
                    continue
            self.peak = max(self.peak, total)


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def constant_scorers(curate, names: list[str]) -> None:
    """Swap each named scorer in `curate` settings for one that gives every item the same score: the pass keeps its
    reads, worker pages and score rows (one per scorer per item), so the difference in time is what the named
    scorers cost. `["all"]` swaps every scorer: what remains is the pipeline around them."""
    from stillroom.curate.scorers import SCORERS, Score, Scorer

    same = Score(1.0, {"constant": True})
    swap = set(curate.scorers) if names == ["all"] else set(names)
    unknown = swap - set(curate.scorers)
    if unknown:
        raise SystemExit(f"--constant-scorers: {sorted(unknown)} not among the enabled scorers {curate.scorers}")
    renamed = {name: f"constant_{name}" for name in swap}
    for new in renamed.values():
        if new not in SCORERS.names():
            SCORERS.register(new)(type(new, (Scorer,), {"score": lambda self, item: same}))
    curate.weights = {renamed.get(k, k): w for k, w in curate.weights.items()}
    curate.scorers = [renamed.get(k, k) for k in curate.scorers]


def run(n: int, keep: Path | None, skip_score: bool = False, constant: list[str] | None = None) -> dict:
    root = Path(tempfile.mkdtemp(prefix=f"curate-scale-{n}-", dir=keep))
    project, _ = init_project(root)
    if constant:
        constant_scorers(project.settings.curate, constant)
    store = project.store()
    chunks, items, planted = generate(n)
    load(store, chunks, items)
    del chunks, items
    steps, cpu = {}, {}
    sampler = RssSampler().__enter__()
    t, c = time.monotonic(), cpu_s()
    if skip_score:  # a stand-in overall score, so dedup and sampling can be timed at sizes scoring cannot reach
        with store.transaction() as con:
            con.execute("INSERT INTO scores (item_id, revision, scorer, scorer_version, value, hard_fail, evidence) "
                        "SELECT id, 0, 'overall', 1, (hash(id) % 1000) / 1000.0, false, '{}' FROM items")
        scored = {"hard_fail": None}
    else:
        scored = score_items(store, project.settings)
    steps["score" + (" (skipped: stand-in scores)" if skip_score else "")] = time.monotonic() - t
    cpu["score"] = cpu_s() - c
    t, c = time.monotonic(), cpu_s()
    dups = find_duplicates(store, project.settings)
    steps["dedup (exact+near)"], cpu["dedup"] = time.monotonic() - t, cpu_s() - c
    steps["  of which exact"], steps["  of which near"] = dups["exact_s"], dups["near_s"]
    try:
        from stillroom.curate.sampling import build_queue
    except ImportError:
        build_queue = None
    if build_queue is not None:
        t, c = time.monotonic(), cpu_s()
        build_queue(store, project.settings)
        steps["sampling"], cpu["sampling"] = time.monotonic() - t, cpu_s() - c
    try:
        from stillroom.curate.export import export_snapshot
    except ImportError:
        export_snapshot = None
    for fmt in ("openai", "parquet") if export_snapshot is not None else ():
        t, c = time.monotonic(), cpu_s()
        manifest = export_snapshot(store, project.settings, fmt, root / f"snap-{fmt}", force=True)
        steps[f"export {fmt}"], cpu[f"export {fmt}"] = time.monotonic() - t, cpu_s() - c
        steps[f"  exported {fmt} items"] = sum(x["count"] for x in manifest["splits"].values())
    sampler.__exit__()
    near = dict(store.query("SELECT item_id, group_id FROM duplicates WHERE kind = 'near'"))
    # an exact duplicate takes part in the near search through its group's representative
    exact_rep = dict(store.query("SELECT item_id, representative_id FROM duplicates WHERE kind = 'exact'"))
    found = 0
    names = _names(n)
    for a, b in planted:
        ga, gb = (near.get(exact_rep.get(names(i), names(i))) for i in (a, b))
        found += ga is not None and ga == gb
    result = {"n": n, **({"constant_scorers": constant} if constant else {}),
              "steps": {k: round(v, 2) for k, v in steps.items()},
              "total_s": round(sum(v for k, v in steps.items() if not k.startswith("  ")), 2),
              "cpu_s": {k: round(v, 1) for k, v in cpu.items()}, "load_avg_1m": round(os.getloadavg()[0], 1),
              "peak_rss_mib": round(sampler.peak / 1024),
              "near_recall": round(found / max(1, len(planted)), 4), "hard_fail": scored["hard_fail"],
              "exact_items": dups["exact"]["items"], "near_items": dups["near"]["items"]}
    if keep is None:
        shutil.rmtree(root, ignore_errors=True)
    return result


def _names(n: int):
    """Item index → id, as `generate` numbered them (unique items, then the planted copies)."""
    n_unique = int(n * 0.90)

    def name(i: int) -> str:
        return f"itm_{i:010d}" if i < n_unique else f"itm_n{i - n_unique:010d}"
    return name


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100000,300000,1000000")
    ap.add_argument("--keep", type=Path, default=None, help="keep the generated projects under this folder")
    ap.add_argument("--skip-score", action="store_true", help="stand-in scores: time dedup and sampling alone")
    ap.add_argument("--constant-scorers", default="", metavar="NAMES",
                    help="comma-separated scorers (or 'all') that give every item the same score: what they cost")
    args = ap.parse_args()
    constant = [x for x in args.constant_scorers.split(",") if x]
    for n in (int(s) for s in args.sizes.split(",")):
        print(json.dumps(run(n, args.keep, args.skip_score, constant), ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
