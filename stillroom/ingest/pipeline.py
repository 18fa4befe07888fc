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
        for path, outcome in _process_all(todo, settings, passwords):
            if isinstance(outcome, ExtractError):
                report.failed.append((path, f"{outcome.problem}" + (f" — {outcome.hint}" if outcome.hint else "")))
            else:
                _write(store, outcome)
                report.documents += 1
                report.pages += len(outcome.pages)
                report.chunks += len(outcome.chunks)
            if progress:
                progress(Path(path).name, 0 if isinstance(outcome, ExtractError) else len(outcome.pages))
        _settle_twins(store, twins, report)
        report.seconds = time.perf_counter() - t0
        _finish_run(store, report)
    return report


def _settle_twins(store: Store, twins: list[tuple[str, str]], report: IngestReport) -> None:
    """Files with the same bytes as another file of this batch share its outcome."""
    errors = {sha: msg for (path, msg) in report.failed for sha in [report.sha_of.get(path)] if sha}
    for path, sha in twins:
        if sha in errors:
            report.failed.append((path, errors[sha]))
        else:
            with store.transaction() as con:
                _add_version(con, path, sha)
            report.known_content += 1


def _plan(store: Store, settings: Settings, files: list[Path],
          report: IngestReport) -> tuple[list[tuple[str, str, int]], list[tuple[str, str]]]:
    """Hash every file (streaming) and keep those whose bytes are new; record paths whose bytes are known.

    Returns the files to process and the "twins": files whose bytes equal an earlier file of this batch.
    """
    todo: list[tuple[str, str, int]] = []
    twins: list[tuple[str, str]] = []
    planned: set[str] = set()
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
        latest = store.query("SELECT document_id FROM document_versions WHERE path = ? ORDER BY version DESC LIMIT 1",
                             [str(path)])
        if latest and latest[0][0] == sha:
            report.unchanged += 1
        elif sha in planned:
            twins.append((str(path), sha))
        elif store.scalar("SELECT count(*) FROM documents WHERE id = ?", [sha]):
            with store.transaction() as con:
                _add_version(con, str(path), sha)
            report.known_content += 1
        else:
            planned.add(sha)
            todo.append((str(path), sha, size))
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


def _add_version(con, path: str, document_id: str) -> None:
    v = con.execute("SELECT coalesce(max(version), 0) FROM document_versions WHERE path = ?", [path]).fetchall()[0][0]
    con.execute("INSERT INTO document_versions (path, version, document_id) VALUES (?, ?, ?)", [path, v + 1, document_id])


def _write(store: Store, doc: DocResult) -> None:
    """One transaction: a crash anywhere inside leaves no trace of this document, and a re-run redoes it."""
    with store.transaction() as con:
        con.execute(
            "INSERT INTO documents (id, file_name, format, size_bytes, n_pages, encoding, title, normalized, "
            "dropped_lines, meta) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [doc.sha256, Path(doc.path).name, doc.format, doc.size, doc.n_pages, doc.encoding, doc.title,
             doc.normalized, doc.dropped_lines, json.dumps(doc.meta, ensure_ascii=False, default=str)])
        insert_columns(con, "pages", {
            "document_id": [doc.sha256] * len(doc.pages), "page_no": [p.number for p in doc.pages],
            "char_start": [p.char_start for p in doc.pages], "text": [p.text for p in doc.pages],
            "normalized": [p.normalized for p in doc.pages]})
        chunks = doc.chunks
        insert_columns(con, "chunks", {
            "id": [content_id("chk", [doc.sha256, c.start, c.end, c.text]) for c in chunks],
            "document_id": [doc.sha256] * len(chunks), "seq": [c.seq for c in chunks],
            "page_start": [c.page_start for c in chunks], "page_end": [c.page_end for c in chunks],
            "char_start": [c.start for c in chunks], "char_end": [c.end for c in chunks],
            "heading_path": [c.heading_path for c in chunks], "text": [c.text for c in chunks],
            "n_tokens": [c.n_tokens for c in chunks], "tokenizer": [doc.tokenizer] * len(chunks),
            "has_figures": [c.has_figures for c in chunks]})
        _add_version(con, doc.path, doc.sha256)


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
