"""`stillroom import`: every dataset shape users have, bad lines reported by number, nothing else lost."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from stillroom.cli import app
from stillroom.curate.importer import import_files
from stillroom.curate.pipeline import curate
from stillroom.curate.state import list_items
from tests.test_curate_flow_helpers import new_project

SOURCE = "第三条 员工出差住宿费报销上限为每晚500元，交通补贴每天80元。"
LINES = [
    {"instruction": "住宿费上限是多少？", "input": "", "output": "每晚500元。", "source": SOURCE, "id": "a-1",
     "author": "li"},
    {"conversations": [{"from": "human", "value": "交通补贴每天多少？"}, {"from": "gpt", "value": "每天80元。"}],
     "context": SOURCE},
    {"messages": [{"role": "system", "content": "你是助手。"}, {"role": "user", "content": "补贴多少？"},
                  {"role": "assistant", "content": "每天90元。"}], "source": SOURCE, "id": 7},
    {"question": "What is the hotel cap?", "answer": "500 yuan per night.", "tags": ["hotel"]},
    {"messages": [{"from": "human", "value": "Q1?"}, {"from": "gpt", "value": "A1."},
                  {"from": "human", "value": "Q2?"}, {"from": "gpt", "value": "A2."}]},
]


def _write(tmp_path):
    path = tmp_path / "old.jsonl"
    lines = [json.dumps(r, ensure_ascii=False) for r in LINES]
    lines.insert(2, "{not json")
    lines.append(json.dumps({"prompt": "x", "completion": "y"}))
    lines.append(json.dumps({"question": "只有问题", "answer": ""}))
    path.write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    return path


def test_every_shape_is_imported_and_bad_lines_are_reported_by_number(tmp_path):
    project, store = new_project(tmp_path / "p")
    s = import_files(store, [_write(tmp_path)])
    assert s["imported"] == 5 and s["records"] == 8
    assert [b["line"] for b in s["bad"]] == [3, 7, 8]
    assert s["bad"][0]["error"].startswith("not valid JSON")
    assert s["bad"][1]["error"].startswith("not Alpaca (instruction/output), ShareGPT (conversations), OpenAI")
    assert "completion, prompt" in s["bad"][1]["error"]
    assert s["bad"][2]["error"] == "no answer (assistant turn)"
    rows = {r[0]: r for r in store.query(
        "SELECT coalesce(external_id, question), task, origin, chunk_id IS NOT NULL, messages, meta FROM items")}
    assert rows["a-1"][1:4] == ("qa", "import", True) and json.loads(rows["a-1"][5]) == {"author": "li"}
    assert json.loads(rows["7"][4])[0] == {"role": "system", "content": "你是助手。"}
    assert rows["交通补贴每天多少？"][3] is True
    assert json.loads(rows["What is the hotel cap?"][5]) == {"tags": ["hotel"]}
    assert rows["Q1?"][1] == "multiturn" and rows["Q1?"][3] is False
    # one source text → one document and one chunk, shared by the records that cite it
    assert store.scalar("SELECT count(*) FROM documents") == 1 and store.scalar("SELECT count(*) FROM chunks") == 1
    events = store.query("SELECT subject FROM run_events ORDER BY subject")
    assert [e[0].rsplit(":", 1)[1] for e in events] == ["3", "7", "8"]
    # importing again adds nothing
    assert import_files(store, [tmp_path / "old.jsonl"])["imported"] == 0


def test_a_json_list_file_and_the_cli(tmp_path, monkeypatch):
    project, store = new_project(tmp_path / "p")
    path = tmp_path / "set.json"
    path.write_text(json.dumps({"data": LINES[:2]}, ensure_ascii=False), encoding="utf-8")
    monkeypatch.chdir(project.root)
    result = CliRunner().invoke(app, ["import", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["imported"] == 2
    result = CliRunner().invoke(app, ["import", str(_write(tmp_path))])
    assert result.exit_code == 1 and "old.jsonl:3: not valid JSON" in result.stderr


def test_imported_items_are_scored_like_distilled_ones(tmp_path):
    project, store = new_project(tmp_path / "p")
    import_files(store, [_write(tmp_path)])
    curate(store, project.settings)
    items = {i["external_id"] or i["question"]: i for i in list_items(store, project.settings, limit=None)}
    assert items["a-1"]["status"] == "auto_approved"
    assert items["7"]["status"] == "needs_review"  # 90元 is not in the source
    assert items["7"]["scores"]["numeric_fidelity"]["evidence"]["not_in_source"] == ["90元"]
