"""Files → store, one transaction per document. Workers extract and chunk; this process alone writes."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from stillroom.errors import ExtractError
from stillroom.ids import content_id, file_sha256
from stillroom.ingest.inputs import expand
from stillroom.ingest.process import DocResult, init_worker, process_file
from stillroom.settings import Settings
from stillroom.store import Store, insert_columns

# Below this many new files, the process pool costs more (interpreter start-up) than it saves.
POOL_MIN_FILES = 6


@dataclass
class IngestReport:
    run_id: str
    documents: int = 0  # new documents written
    pages: int = 0
    chunks: int = 0
    unchanged: int = 0  # same bytes already ingested at this path
    known_content: int = 0  # same bytes already ingested from another path: a version row only
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, message)
    seconds: float = 0.0
    sha_of: dict[str, str] = field(default_factory=dict, repr=False)  # path → content hash, for this run

    def as_dict(self) -> dict:
        return {"run_id": self.run_id, "documents": self.documents, "pages": self.pages, "chunks": self.chunks,
                "unchanged": self.unchanged, "known_content": self.known_content, "skipped": len(self.skipped),
                "failed": [{"path": p, "error": m} for p, m in self.failed], "seconds": round(self.seconds, 3)}


Progress = Callable[[str, int], None]  # (file name, pages done in it) after each file


def ingest_paths(store: Store, settings: Settings, paths: list[str], *, passwords: tuple[str, ...] = (),
                 progress: Progress | None = None, on_total: Callable[[int], None] | None = None) -> IngestReport:
    t0 = time.perf_counter()
    inputs = expand(paths)
    report = IngestReport(run_id=content_id("run", [time.time_ns(), os.getpid()], 16))
    report.failed += inputs.failures
    report.skipped = inputs.skipped
    with store.session():
        _start_run(store, report, paths)
        todo, twins = _plan(store, settings, inputs.files, report)
        if on_total:
            on_total(len(todo))
        batch = _Batch(store)
        for path, outcome in _process_all(todo, settings, passwords):
            if isinstance(outcome, ExtractError):
                report.failed.append((path, f"{outcome.problem}" + (f" — {outcome.hint}" if outcome.hint else "")))
            else:
                batch.add(outcome)
                report.documents += 1
                report.pages += len(outcome.pages)
                report.chunks += len(outcome.chunks)
            if progress:
                progress(Path(path).name, 0 if isinstance(outcome, ExtractError) else len(outcome.pages))
        batch.flush()
        _settle_twins(store, twins, report)
        report.seconds = time.perf_counter() - t0
        _finish_run(store, report)
    return report


def _settle_twins(store: Store, twins: list[tuple[str, str]], report: IngestReport) -> None:
    """Files with the same bytes as another file of this batch share its outcome."""
    errors = {sha: msg for (path, msg) in report.failed for sha in [report.sha_of.get(path)] if sha}
    report.failed += [(path, errors[sha]) for path, sha in twins if sha in errors]
    known = [(path, sha) for path, sha in twins if sha not in errors]
    if known:
        with store.transaction() as con:
            _add_versions(con, known)
        report.known_content += len(known)


def _plan(store: Store, settings: Settings, files: list[Path],
          report: IngestReport) -> tuple[list[tuple[str, str, int]], list[tuple[str, str]]]:
    """Hash every file (streaming) and keep those whose bytes are new; record paths whose bytes are known.

    Returns the files to process and the "twins": files whose bytes equal an earlier file of this batch.
    """
    todo: list[tuple[str, str, int]] = []
    twins: list[tuple[str, str]] = []
    planned: set[str] = set()
    hashed: list[tuple[Path, str, int]] = []
    limit = settings.ingest.max_file_mb * 1024 * 1024
    for path in files:
        try:
            size = path.stat().st_size
            if size > limit:
                report.failed.append((str(path), f"larger than [ingest] max_file_mb = {settings.ingest.max_file_mb}"
                                      " — raise it in stillroom.toml to ingest this file"))
                continue
            sha = file_sha256(path)
        except FileNotFoundError:
            report.failed.append((str(path), "vanished before it could be read — put it back and run ingest again"))
            continue
        report.sha_of[str(path)] = sha
        hashed.append((path, sha, size))
    paths = [str(p) for p, _, _ in hashed]
    latest = dict(store.query("SELECT path, arg_max(document_id, version) FROM document_versions "
                              "WHERE path IN (SELECT unnest(?)) GROUP BY path", [paths]))
    stored = {r[0] for r in store.query("SELECT id FROM documents WHERE id IN (SELECT unnest(?))",
                                        [[sha for _, sha, _ in hashed]])}
    known: list[tuple[str, str]] = []
    for path, sha, size in hashed:
        if latest.get(str(path)) == sha:
            report.unchanged += 1
        elif sha in planned:
            twins.append((str(path), sha))
        elif sha in stored:
            known.append((str(path), sha))
        else:
            planned.add(sha)
            todo.append((str(path), sha, size))
    if known:
        with store.transaction() as con:
            _add_versions(con, known)
        report.known_content += len(known)
    return todo, twins


def _process_all(todo: list[tuple[str, str, int]], settings: Settings,
                 passwords: tuple[str, ...]) -> Iterator[tuple[str, DocResult | ExtractError]]:
    workers = settings.ingest.workers or os.cpu_count() or 1
    if len(todo) < POOL_MIN_FILES or workers == 1:
        for path, sha, size in todo:
            yield path, _safe(path, sha, size, settings, passwords)
        return
    queue = list(todo)
    while queue:  # a file that crashes the PDF library kills its worker: find it, report it, go on
        suspects, queue = yield from _pool_pass(queue, workers, settings, passwords)
        for job in suspects:
            yield job[0], _isolated(job, settings, passwords)


def _new_pool(workers: int, settings: Settings) -> ProcessPoolExecutor:
    ctx = multiprocessing.get_context("spawn")  # never fork a process that holds a DuckDB connection
    return ProcessPoolExecutor(workers, mp_context=ctx, initializer=init_worker,
                               initargs=(settings.chunking.tokenizer,))


def _pool_pass(todo, workers, settings, passwords):
    """Runs jobs until done or a worker dies; returns (jobs in flight when it died, jobs not started)."""
    window = workers * 4  # bounded look-ahead keeps memory flat on big batches
    futures: list[tuple[tuple[str, str, int], Future]] = []
    rest = iter(todo)
    with _new_pool(workers, settings) as pool:
        try:
            for job in rest:
                futures.append((job, pool.submit(_safe, *job, settings, passwords)))
                if len(futures) >= window:
                    break
            while futures:
                job, fut = futures[0]
                result = fut.result()
                futures.pop(0)
                yield job[0], result
                nxt = next(rest, None)
                if nxt is not None:
                    futures.append((nxt, None))  # placeholder so a failed submit keeps the job
                    futures[-1] = (nxt, pool.submit(_safe, *nxt, settings, passwords))
        except BrokenProcessPool:
            return [job for job, _ in futures], list(rest)
    return [], []


def _isolated(job: tuple[str, str, int], settings: Settings, passwords: tuple[str, ...]) -> DocResult | ExtractError:
    with _new_pool(1, settings) as pool:
        try:
            return pool.submit(_safe, *job, settings, passwords).result()
        except BrokenProcessPool:
            return ExtractError(job[0], "crashed the PDF library (the file is malformed)",
                                "repair or re-export it, or leave it out")


def _safe(path: str, sha: str, size: int, settings: Settings, passwords: tuple[str, ...]) -> DocResult | ExtractError:
    try:
        return process_file(path, sha, size, settings, passwords)
    except ExtractError as e:
        return e


def _add_versions(con, pairs: list[tuple[str, str]]) -> None:
    """Each (path, document id) becomes that path's next version."""
    paths = [p for p, _ in pairs]
    current = dict(con.execute("SELECT path, max(version) FROM document_versions WHERE path IN (SELECT unnest(?)) "
                               "GROUP BY path", [paths]).fetchall())
    versions = []
    for path in paths:
        current[path] = current.get(path, 0) + 1
        versions.append(current[path])
    insert_columns(con, "document_versions", {"path": paths, "version": versions,
                                              "document_id": [d for _, d in pairs]})


class _Batch:
    """Finished documents wait here and are written together: each DuckDB statement costs milliseconds,
    so one transaction per document would make the store, not extraction, the bottleneck.

    A batch holds whole documents only, so a crash still never leaves half a document; it loses at
    most the batch in hand, which a re-run redoes.
    """

    MAX_DOCS, MAX_CHUNKS, MAX_AGE_S = 64, 5000, 1.0

    def __init__(self, store: Store) -> None:
        self.store = store
        self.docs: list[DocResult] = []
        self.chunks = 0
        self.since = 0.0

    def add(self, doc: DocResult) -> None:
        if not self.docs:
            self.since = time.monotonic()
        self.docs.append(doc)
        self.chunks += len(doc.chunks)
        if (len(self.docs) >= self.MAX_DOCS or self.chunks >= self.MAX_CHUNKS
                or time.monotonic() - self.since >= self.MAX_AGE_S):
            self.flush()

    def flush(self) -> None:
        if self.docs:
            _write(self.store, self.docs)
            self.docs, self.chunks = [], 0


def _write(store: Store, docs: list[DocResult]) -> None:
    """One transaction for whole documents: a crash anywhere inside leaves no trace of them."""
    pages = [(d.sha256, p) for d in docs for p in d.pages]
    chunks = [(d, c, cid) for d in docs for c, cid in zip(d.chunks, d.chunk_ids)]
    with store.transaction() as con:
        insert_columns(con, "documents", {
            "id": [d.sha256 for d in docs], "file_name": [Path(d.path).name for d in docs],
            "format": [d.format for d in docs], "size_bytes": [d.size for d in docs],
            "n_pages": [d.n_pages for d in docs], "encoding": [d.encoding for d in docs],
            "title": [d.title for d in docs], "normalized": [d.normalized for d in docs],
            "dropped_lines": [d.dropped_lines for d in docs],
            "meta": [json.dumps(d.meta, ensure_ascii=False, default=str) for d in docs]})
        insert_columns(con, "pages", {
            "document_id": [sha for sha, _ in pages], "page_no": [p.number for _, p in pages],
            "char_start": [p.char_start for _, p in pages], "text": [p.text for _, p in pages],
            "normalized": [p.normalized for _, p in pages]})
        insert_columns(con, "chunks", {
            "id": [cid for _, _, cid in chunks], "document_id": [d.sha256 for d, _, _ in chunks],
            "seq": [c.seq for _, c, _ in chunks], "page_start": [c.page_start for _, c, _ in chunks],
            "page_end": [c.page_end for _, c, _ in chunks], "char_start": [c.start for _, c, _ in chunks],
            "char_end": [c.end for _, c, _ in chunks], "heading_path": [c.heading_path for _, c, _ in chunks],
            "text": [c.text for _, c, _ in chunks], "n_tokens": [c.n_tokens for _, c, _ in chunks],
            "tokenizer": [d.tokenizer for d, _, _ in chunks], "has_figures": [c.has_figures for _, c, _ in chunks]})
        _add_versions(con, [(d.path, d.sha256) for d in docs])


def _start_run(store: Store, report: IngestReport, paths: list[str]) -> None:
    with store.transaction() as con:
        con.execute("INSERT INTO runs (id, stage, status, pid, args) VALUES (?, 'ingest', 'running', ?, ?)",
                    [report.run_id, os.getpid(), json.dumps({"paths": paths}, ensure_ascii=False)])


def _finish_run(store: Store, report: IngestReport) -> None:
    with store.transaction() as con:
        status = "done" if not report.failed else "done_with_failures"
        con.execute("UPDATE runs SET status = ?, finished_at = current_timestamp, summary = ? WHERE id = ?",
                    [status, json.dumps(report.as_dict(), ensure_ascii=False), report.run_id])
        if report.failed:
            con.executemany("INSERT INTO run_events (run_id, level, subject, message) VALUES (?, 'error', ?, ?)",
                            [[report.run_id, p, m] for p, m in report.failed])
