"""Pipeline runs started from the browser: uploads, and ingest → distill → curate as a child process.

A run is the CLI itself (`stillroom ingest`, `distill`, `curate`) in its own process group, so it
calls exactly the CLI's functions, takes the database lock like any batch run, outlives a browser
reload (and the server), and records its stages in `runs` where `stillroom status` sees them.
Stopping sends SIGINT, which the CLI handles like Ctrl+C: the run is resumable by starting it again.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from stillroom.errors import UsageError

# What a file of each accepted type must start with (text formats must decode as UTF-8/UTF-16).
MAGIC = {"pdf": (b"%PDF-",), "docx": (b"PK\x03\x04",)}


def uploads_dir(root: Path) -> Path:
    return root / "uploads"


def jobs_dir(state_dir: Path) -> Path:
    d = state_dir / "web-runs"
    d.mkdir(parents=True, exist_ok=True)
    return d


def save_upload(root: Path, filename: str, data: bytes, allowed: list[str], max_mb: int) -> Path:
    """Check size, extension and content, then keep the file under <project>/uploads/."""
    name = Path(filename or "").name
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if not name or not re.fullmatch(r"[\w\-. ()\u3000-\u9fff]+", name) or name.startswith("."):
        raise UsageError(f"{filename!r}: use a plain file name (letters, digits, - _ . space)")
    if ext not in allowed:
        raise UsageError(f"{name}: .{ext} files are not accepted — allowed: {', '.join(allowed)}")
    if len(data) > max_mb * 1024 * 1024:
        raise UsageError(f"{name}: larger than {max_mb} MB — raise [review] upload_max_mb or ingest it from the CLI")
    if ext in MAGIC and not data.startswith(MAGIC[ext]):
        raise UsageError(f"{name}: not a real .{ext} file (its content does not match the extension)")
    if ext not in MAGIC and not _is_text(data):
        raise UsageError(f"{name}: not a text file — save it as UTF-8 text")
    dest = uploads_dir(root)
    dest.mkdir(exist_ok=True)
    (dest / name).write_bytes(data)
    return dest / name


def _is_text(data: bytes) -> bool:
    for enc in ("utf-8", "utf-16"):
        try:
            data.decode(enc)
            return b"\x00" not in data or enc == "utf-16"
        except UnicodeDecodeError:
            continue
    return False


def start(root: Path, state_dir: Path, user: str, provider: str, tasks: list[str]) -> str:
    """Start ingest → distill → curate on <project>/uploads in a detached process group; returns the job id."""
    job = time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)
    log = jobs_dir(state_dir) / f"{job}.log"
    cli = [sys.executable, "-m", "stillroom"]
    steps = [[*cli, "ingest", str(uploads_dir(root))],
             [*cli, "distill", *(["--provider", provider] if provider else []),
              *[a for t in tasks for a in ("--task", t)]],
             [*cli, "curate"]]
    # `&&`: a stage that fails or is stopped leaves the later stages unstarted, as on the command line.
    script = " && ".join(" ".join(shlex.quote(a) for a in step) for step in steps)
    with open(log, "ab") as out:
        proc = subprocess.Popen(["/bin/sh", "-c", script], cwd=root, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    info = {"id": job, "pid": proc.pid, "user": user, "provider": provider, "tasks": tasks,
            "started": time.time(), "log": log.name}
    (jobs_dir(state_dir) / f"{job}.json").write_text(json.dumps(info), encoding="utf-8")
    return job


def load(state_dir: Path, job: str) -> dict:
    path = jobs_dir(state_dir) / f"{job}.json"
    if not re.fullmatch(r"[0-9a-f-]+", job) or not path.is_file():
        raise UsageError(f"no run {job!r} started from the browser")
    info = json.loads(path.read_text(encoding="utf-8"))
    info["running"] = _alive(info["pid"])
    log = jobs_dir(state_dir) / info["log"]
    info["log_tail"] = log.read_text(encoding="utf-8", errors="replace")[-4000:] if log.is_file() else ""
    return info


def recent(state_dir: Path, limit: int = 10) -> list[dict]:
    names = sorted((p.stem for p in jobs_dir(state_dir).glob("*.json")), reverse=True)[:limit]
    return [load(state_dir, n) for n in names]


def stop(state_dir: Path, job: str) -> bool:
    info = load(state_dir, job)
    if not info["running"]:
        return False
    os.killpg(info["pid"], signal.SIGINT)
    return True


def _alive(pid: int) -> bool:
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)  # reaps our own child once it exits
        return finished == 0
    except ChildProcessError:  # not our child (the server restarted): ask the kernel
        try:
            os.kill(pid, 0)
            return True
        except ProcessLookupError:
            return False
