from __future__ import annotations

import re
from datetime import datetime, timezone

from rich.table import Table

from stillroom.cli.app import JsonOpt, Output, ProjectOpt, app
from stillroom.project import find_project


@app.command()
def keys(project: ProjectOpt = None, json_: JsonOpt = False) -> None:
    """Each API key's alias, state, requests, 429s, tokens and last error, as the last distill run left them (never the key)."""
    out = Output(json_)
    proj = find_project(project)
    rows = proj.store().query_dicts(
        "SELECT provider, alias, state, cooling_until, requests, rate_limited, tokens, last_error, updated_at "
        "FROM key_state ORDER BY provider, length(alias), alias")
    table = Table(title="API keys (from the last distill runs)")
    for col in ("key", "state", "requests", "429s", "tokens", "last error"):
        table.add_column(col, justify="right" if col in ("requests", "429s", "tokens") else "left")
    for r in rows:
        r["shown_state"] = shown_state(r)
        table.add_row(r["alias"], r["shown_state"], str(r["requests"]), str(r["rate_limited"]), f"{r['tokens']:,}",
                      r["last_error"] or "")
    if rows:
        out.say(table)
    else:
        out.say("no key has been used yet — keys come from OPENAI_API_KEYS, GEMINI_API_KEYS, ZHIPUAI_API_KEYS "
                "(or the single-key names) or a key file; see docs/distill.md")
    out.summary({"keys": rows})


def shown_state(r: dict) -> str:
    """ok / cooling until 12:03:04 / retired: quota / disabled: 401."""
    if r["state"] == "cooling":
        until = r["cooling_until"]
        return f"cooling until {until:%H:%M:%S}" if until and until > datetime.now(timezone.utc).replace(tzinfo=None) else "ok"
    if r["state"] == "retired":
        return "retired: quota"
    if r["state"] == "disabled":
        code = re.search(r"\b(40[13])\b", r["last_error"] or "")
        return f"disabled: {code.group(1) if code else 'auth'}"
    return r["state"]
