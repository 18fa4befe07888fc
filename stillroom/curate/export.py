"""Write an immutable snapshot of the selected, approved items: splits by source document, and a manifest.

Items stream from the store in Arrow batches, so 100k+ items never sit in memory at once. The
snapshot is written to a temporary folder beside the target and renamed into place, so a crash
leaves either the old folder or the new one, never half of one. The same state and seed give
byte-identical files: records in id order, documents assigned to splits by a seeded hash, and a
manifest whose time is the time of the newest state it reflects, not the wall clock.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterator

import duckdb

from stillroom import __version__
from stillroom.curate import gates, quotas, sampling
from stillroom.curate.exporters import EXPORTERS, NOT_A_LIST, Exporter
from stillroom.curate.state import utcnow
from stillroom.errors import StillroomError, UsageError
from stillroom.ids import content_id, file_sha256

SPLITS = ("train", "val", "test")

# The selection already names each item's current revision: no second pass over scores and decisions.
_ROWS = """
SELECT split, {projection} FROM (
  SELECT p.split, i.id, i.task, coalesce(r.messages, i.messages) AS messages, i.meta,
         coalesce(r.question, i.question) AS question, coalesce(r.answer, i.answer) AS answer
  FROM selection s JOIN split_of p USING (document_id) JOIN items i ON i.id = s.id
  LEFT JOIN item_revisions r ON r.item_id = s.id AND r.revision = s.revision
  WHERE s.dropped IS NULL)
ORDER BY split, id
"""


def export_snapshot(store: Any, settings: Any, fmt: str, out: Path, *, split: list[float] | None = None,
                    seed: int | None = None, overwrite: bool = False, force: bool = False) -> dict:
    """Write the snapshot to `out`; returns the manifest. Refuses failing gates unless `force`."""
    exporter: Exporter = EXPORTERS.get(fmt)()
    out = Path(out)
    shares = list(split if split is not None else settings.export.split)
    seed = settings.export.seed if seed is None else seed
    _check_target(out, overwrite, shares)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        with store.connect() as con:
            mix = quotas.select(con, settings)
            gate_rows = gates.evaluate(con, settings, mix)
            failing = gates.failing(gate_rows)
            if failing and not force:
                raise StillroomError(f"quality gate(s) failed: {', '.join(failing)} — run `stillroom curate` to see "
                                     "them, review the queue, or export with --force (recorded in the manifest)")
            counts = _assign_splits(con, shares, seed)
            try:
                files = _write_splits(con, settings, exporter, tmp, counts)
            except duckdb.InvalidInputException as e:
                if NOT_A_LIST not in str(e):
                    raise
                raise StillroomError(str(e).split("Error: ", 1)[-1] + " — fix it with `stillroom review` (edit or "
                                     "reject the item), then export again; nothing was written") from None
            manifest = _manifest(con, store, settings, fmt, shares, seed, files, gate_rows, failing, force, mix)
            con.execute("DROP TABLE IF EXISTS selection; DROP TABLE IF EXISTS split_of")
        _finish(tmp, manifest, exporter)
        _swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _record(store, out, manifest)
    return manifest


def _check_target(out: Path, overwrite: bool, shares: list[float]) -> None:
    if len(shares) != 3 or any(s < 0 for s in shares) or abs(sum(shares) - 1) > 0.01:
        raise UsageError(f"--split needs three non-negative shares adding up to 1 (train,val,test), e.g. 0.8,0.1,0.1; "
                         f"got {','.join(map(str, shares))}")
    if out.exists() and not overwrite:
        raise UsageError(f"{out} already exists — pick a new folder (snapshots are immutable) or pass --overwrite")
    if out.exists() and not (out / "manifest.json").is_file():
        raise UsageError(f"{out} exists and is not a stillroom snapshot — refusing to replace it; pick another folder")


def _assign_splits(con: Any, shares: list[float], seed: int) -> dict[str, int]:
    """Whole documents go to one split each: shuffled by a seeded hash, each to the split furthest below its share."""
    docs = con.execute("SELECT document_id, count(*) FROM selection WHERE dropped IS NULL GROUP BY 1").fetchall()
    wanted = [name for name, s in zip(SPLITS, shares) if s > 0]
    if not docs:
        raise StillroomError("nothing to export: no approved items are selected — run `stillroom curate` and "
                             "review the queue, or check `stillroom items --status needs_review`")
    if len(docs) < len(wanted):
        raise UsageError(f"--split {','.join(map(str, shares))} needs at least {len(wanted)} source documents (no "
                         f"document goes to two splits) but the approved set has {len(docs)} — give the empty split "
                         "a share of 0, e.g. --split 0.9,0.1,0")
    docs.sort(key=lambda d: hashlib.sha256(f"{seed}/{d[0]}".encode()).hexdigest())
    total = sum(n for _, n in docs)
    target = {name: s * total for name, s in zip(SPLITS, shares)}
    counts = {name: 0 for name in wanted}
    choices = []
    for i, (doc, n) in enumerate(docs):
        empty = [s for s in wanted if counts[s] == 0]
        pool = empty if len(docs) - i <= len(empty) else wanted  # the last documents go where a split is still empty
        choice = max(pool, key=lambda s: (target[s] - counts[s], -wanted.index(s)))
        counts[choice] += n
        choices.append(choice)
    con.execute("CREATE OR REPLACE TEMP TABLE split_of AS SELECT unnest(?::VARCHAR[]) AS document_id, "
                "unnest(?::VARCHAR[]) AS split", [[doc for doc, _ in docs], choices])
    return counts


def _split_batches(con: Any, settings: Any, exporter: Exporter) -> Iterator[tuple[str, Iterator]]:
    """Each split with its Arrow batches, to be read in turn. Nothing else may run on `con` while this streams
    (temp tables are per connection, so a second cursor cannot see `selection`); the writers only consume it."""
    stream = con.sql(_ROWS.format(projection=exporter.projection)).to_arrow_reader(settings.export.batch_size)
    for split, runs in itertools.groupby(_runs(stream), key=lambda run: run[0]):
        yield split, (batch for _, batch in runs)


def _runs(stream: Any) -> Iterator[tuple[str, Any]]:
    """(split, batch without its split column) pieces of a stream sorted by split; a batch may hold two splits."""
    import pyarrow.compute as pc

    for batch in stream:
        col, rest, start = batch.column(0), batch.drop_columns([batch.schema.names[0]]), 0
        while start < batch.num_rows:
            split = col[start].as_py()
            end = start + pc.sum(pc.equal(col.slice(start), split)).as_py()  # sorted: one split's rows are together
            yield split, rest.slice(start, end - start)
            start = end


def _write_splits(con: Any, settings: Any, exporter: Exporter, tmp: Path, counts: dict[str, int]) -> dict[str, dict]:
    files = {}
    for split, batches in _split_batches(con, settings, exporter):
        name = f"{split}{exporter.suffix}"
        files[split] = {"file": name, "count": exporter.write(tmp / name, batches)}
    for split in counts:  # _assign_splits gives each split items; should one have none, it still gets its file
        if split not in files:
            name = f"{split}{exporter.suffix}"
            files[split] = {"file": name, "count": exporter.write(tmp / name, iter(()))}
    return {split: files[split] for split in counts}  # in the manifest's order


def _manifest(con: Any, store: Any, settings: Any, fmt: str, shares: list[float], seed: int, files: dict,
              gate_rows: list[dict], failing: list[str], force: bool, mix: dict) -> dict:
    sel = "SELECT * FROM selection WHERE dropped IS NULL"
    by_task = dict(con.execute(f"SELECT task, count(*) FROM ({sel}) GROUP BY 1 ORDER BY 1").fetchall())
    by_doc = dict(con.execute(f"SELECT coalesce(document, document_id), count(*) FROM ({sel}) GROUP BY 1 ORDER BY 1")
                  .fetchall())
    by_split: dict[str, dict] = {}
    for split, task, n in con.execute(f"SELECT p.split, st.task, count(*) FROM ({sel}) st JOIN split_of p "
                                      "USING (document_id) GROUP BY 1, 2 ORDER BY 1, 2").fetchall():
        by_split.setdefault(split, {})[task] = n
    prompts = {}
    for task, h in con.execute(f"SELECT DISTINCT task, prompt_hash FROM ({sel}) WHERE prompt_hash IS NOT NULL "
                               "ORDER BY 1, 2").fetchall():
        prompts.setdefault(task, []).append(h)
    as_of = con.execute("SELECT greatest((SELECT max(created_at) FROM items), (SELECT max(created_at) FROM reviews), "
                        "(SELECT max(created_at) FROM item_revisions))").fetchone()[0]
    return {
        "kind": "snapshot", "format": fmt, "created_at": as_of.isoformat() if as_of else None,
        "stillroom_version": __version__, "seed": seed, "split_shares": dict(zip(SPLITS, shares)),
        "splits": {s: {**f, "by_task": by_split.get(s, {})} for s, f in files.items()},
        "counts": {"items": sum(f["count"] for f in files.values()), "by_task": by_task, "by_document": by_doc},
        "gates": gate_rows, "failing_gates": failing, "forced": bool(force and failing),
        "error_rate": sampling.error_rate_estimate(store, settings),
        "selection": mix, "config": {"curate": settings.curate.model_dump(), "export": settings.export.model_dump()},
        "prompt_hashes": prompts,
    }


def _finish(tmp: Path, manifest: dict, exporter: Exporter) -> None:
    """Extra files, then every file's sha256; the snapshot id is the hash of those hashes."""
    split_files = {s: f["file"] for s, f in manifest["splits"].items()}
    for name, content in exporter.extra_files(split_files).items():
        (tmp / name).write_text(json.dumps(content, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    hashes = {p.name: file_sha256(p) for p in sorted(tmp.iterdir()) if p.name != "manifest.json"}
    manifest["files"] = hashes
    manifest["snapshot_id"] = content_id("snap", hashes, 24)
    (tmp / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2, default=str) + "\n",
                                       encoding="utf-8")


def _swap_into_place(tmp: Path, out: Path) -> None:
    """Rename is atomic; an old snapshot (with --overwrite) is moved aside first and removed only after."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        out.rename(old)
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old)


def _record(store: Any, out: Path, manifest: dict) -> None:
    with store.transaction() as con:
        con.execute("INSERT INTO snapshots (id, path, format, manifest, n_items, forced, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET path = excluded.path",
                    [manifest["snapshot_id"], str(out.resolve()), manifest["format"],
                     json.dumps(manifest, ensure_ascii=False, default=str), manifest["counts"]["items"],
                     manifest["forced"], utcnow()])
        con.execute("INSERT INTO audit_log (created_at, actor, action, subject, detail) VALUES (?, 'cli', 'export', ?, ?)",
                    [utcnow(), manifest["snapshot_id"], json.dumps({"path": str(out), "format": manifest["format"],
                                                                    "forced": manifest["forced"],
                                                                    "failing_gates": manifest["failing_gates"]})])
