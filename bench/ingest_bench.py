"""Ingest throughput: `stillroom ingest` against raw PyMuPDF `page.get_text()` over the same PDFs, in one run.

    python bench/ingest_bench.py [--corpus DIR] [--copies N] [--rounds 3]

Both sides are timed as whole processes (interpreter start-up included), alternating A B A B, and
the pages/s of each is computed over the same page count: every page PyMuPDF can open in the
corpus. Prints each round, the medians and the ratio stillroom / raw (target ≥ 0.7).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO.parent / "shared" / "pdf-corpus"
PASSWORDS = ["baz", "test", "ELXRTQWS", "abc", "æøå", "Hello", "pässwört", "openpassword"]

RAW = """
import sys, pathlib, pymupdf
pymupdf.TOOLS.mupdf_display_errors(False)
pw = sys.argv[2:]
n = 0
for f in sorted(pathlib.Path(sys.argv[1]).rglob("*.pdf")):
    try:
        d = pymupdf.open(str(f))
        if d.needs_pass and not any(d.authenticate(p) for p in pw):
            continue
        for page in d:
            page.get_text()
            n += 1
    except Exception:
        pass
print(n)
"""


def timed(cmd: list[str]) -> tuple[float, str]:
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True)
    return time.perf_counter() - t, out.stdout


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--copies", type=int, default=1, help="repeat the corpus N times (distinct bytes per copy)")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="stillroom-bench-"))
    corpus = work / "corpus"
    for i in range(args.copies):  # each copy gets a trailing comment so its bytes (and hash) differ
        for f in args.corpus.rglob("*.pdf"):
            dst = corpus / f"c{i}" / f.relative_to(args.corpus)
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(f.read_bytes() + (f"\n%copy {i}\n".encode() if i else b""))
    pw_args = [a for p in PASSWORDS for a in ("--password", p)]
    raw_s, sr_s = [], []
    pages = 0
    for r in range(args.rounds):
        t_raw, out = timed([sys.executable, "-c", RAW, str(corpus), *PASSWORDS])
        pages = int(out.strip() or 0)
        proj = work / f"proj{r}"
        subprocess.run([sys.executable, "-m", "stillroom", "init", str(proj)], capture_output=True, check=True)
        t_sr, _ = timed([sys.executable, "-m", "stillroom", "ingest", str(corpus), *pw_args, "--json", "-p", str(proj)])
        raw_s.append(t_raw)
        sr_s.append(t_sr)
        print(f"round {r + 1}: raw {t_raw:.2f} s ({pages / t_raw:.0f} pages/s)   "
              f"stillroom {t_sr:.2f} s ({pages / t_sr:.0f} pages/s)   ratio {t_raw / t_sr:.2f}")
        shutil.rmtree(proj)
    ratios = [a / b for a, b in zip(raw_s, sr_s)]
    print(f"\n{pages} pages in {sum(1 for _ in corpus.rglob('*.pdf'))} PDFs")
    print(f"raw PyMuPDF get_text, 1 process : median {pages / statistics.median(raw_s):.0f} pages/s")
    print(f"stillroom ingest (clean, chunk, tokenize, store): median {pages / statistics.median(sr_s):.0f} pages/s")
    print(f"throughput ratio stillroom/raw: median {statistics.median(ratios):.2f} (target >= 0.7)")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
