"""Snapshots: every format, splits by document, byte-identical re-export, refusals, the manifest and verify."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from stillroom.cli import app
from stillroom.curate import reviews
from stillroom.curate.export import export_snapshot
from stillroom.curate.exporters import EXPORTERS, Exporter, with_ids
from stillroom.curate.verify import verify_path
from stillroom.errors import StillroomError, UnknownName, UsageError
from stillroom.settings import validate_settings
from tests.test_curate_flow_helpers import add_doc, add_items, new_project, set_score

MULTI = [{"role": "system", "content": "你是财务助手。"}, {"role": "user", "content": "住宿标准？"},
         {"role": "assistant", "content": "每晚500元。"}, {"role": "user", "content": "补贴呢？"},
         {"role": "assistant", "content": "每天80元。"}]


@pytest.fixture
def approved(tmp_path):
    """6 documents of passing items, one multiturn item with meta, one rejected, one hard fail, one approved hard fail."""
    project, store = new_project(tmp_path / "p")
    ids, chunks = [], []
    for d in range(6):
        chunks.append(add_doc(store, f"doc{d}"))
        ids += add_items(store, chunks[-1], 5, prefix=f"d{d}")
    set_score(store, ids, 0.9, figures=1)
    chunk = chunks[0]
    with store.transaction() as con:
        con.execute("INSERT INTO items (id, chunk_id, task, origin, question, answer, messages, meta) VALUES "
                    "('itm_multi', ?, 'multiturn', 'distill', '住宿标准？', '每天80元。', ?, '{\"turns\": 2}')",
                    [chunk, json.dumps(MULTI, ensure_ascii=False)])
    set_score(store, "itm_multi", 0.95)
    rejected, hard, rescued = add_items(store, chunk, 3, prefix="x")
    set_score(store, rejected, 0.9)
    set_score(store, [hard, rescued], 0.0, hard_fail=True)
    reviews.decide(store, rejected, "ann", "reject", reason_code="wrong")
    reviews.decide(store, rescued, "ann", "approve")
    settings = validate_settings({"curate": {"gates": {"numeric_fidelity_rate_min": 0.5}}})
    return project, store, settings, {"passing": ids, "rejected": rejected, "hard": hard, "rescued": rescued}


def _records(folder, split="train", suffix=".jsonl"):
    if suffix == ".parquet":
        return pq.read_table(folder / f"{split}.parquet").to_pylist()
    return [json.loads(line) for line in (folder / f"{split}{suffix}").read_text(encoding="utf-8").splitlines()]


def _all(folder, manifest, suffix=".jsonl"):
    return [r for s in manifest["splits"] for r in _records(folder, s, suffix)]


def test_openai_snapshot_holds_the_approved_set_split_by_document(approved, tmp_path):
    project, store, settings, ids = approved
    m = export_snapshot(store, settings, "openai", tmp_path / "snap")
    recs = _all(tmp_path / "snap", m)
    got = {r["id"] for r in recs}
    assert got == set(ids["passing"]) | {"itm_multi", ids["rescued"]}  # not the rejected nor the unreviewed hard fail
    assert m["counts"]["items"] == len(recs) == 32 and sum(s["count"] for s in m["splits"].values()) == 32
    doc_of = dict(store.query("SELECT i.id, c.document_id FROM items i JOIN chunks c ON c.id = i.chunk_id"))
    split_docs = {s: {doc_of[r["id"]] for r in _records(tmp_path / "snap", s)} for s in m["splits"]}
    assert all(split_docs[a].isdisjoint(split_docs[b]) for a in split_docs for b in split_docs if a < b)
    assert all(split_docs[s] for s in ("train", "val", "test"))
    multi = next(r for r in recs if r["id"] == "itm_multi")
    assert multi == {"id": "itm_multi", "task": "multiturn", "messages": MULTI, "meta": {"turns": 2}}
    assert set(m) >= {"snapshot_id", "format", "created_at", "stillroom_version", "splits", "counts", "gates",
                      "error_rate", "config", "prompt_hashes", "forced", "files", "kind"}
    assert set(m["files"]) == {"train.jsonl", "val.jsonl", "test.jsonl"} and m["forced"] is False
    assert store.scalar("SELECT n_items FROM snapshots WHERE id = ?", [m["snapshot_id"]]) == 32


@pytest.mark.parametrize("fmt", ["alpaca", "sharegpt", "llamafactory", "parquet"])
def test_every_format_carries_id_task_and_meta(approved, tmp_path, fmt):
    _, store, settings, _ = approved
    m = export_snapshot(store, settings, fmt, tmp_path / fmt, split=[1.0, 0, 0])
    suffix = ".parquet" if fmt == "parquet" else ".jsonl"
    assert list(m["splits"]) == ["train"]
    recs = {r["id"]: r for r in _records(tmp_path / fmt, "train", suffix)}
    multi = recs["itm_multi"]
    assert multi["task"] == "multiturn"
    if fmt == "alpaca":
        assert multi == {"id": "itm_multi", "task": "multiturn", "instruction": "补贴呢？", "input": "",
                         "output": "每天80元。", "system": "你是财务助手。", "history": [["住宿标准？", "每晚500元。"]],
                         "meta": {"turns": 2}}
    elif fmt == "sharegpt":
        assert [t["from"] for t in multi["conversations"]] == ["system", "human", "gpt", "human", "gpt"]
        assert multi["meta"] == {"turns": 2}
    elif fmt == "llamafactory":
        assert multi["messages"] == MULTI
        info = json.loads((tmp_path / fmt / "dataset_info.json").read_text())
        assert info["stillroom_train"]["file_name"] == "train.jsonl"
        assert info["stillroom_train"]["tags"]["role_tag"] == "role"
        assert info["stillroom_train"]["tags"]["content_tag"] == "content"
        assert "dataset_info.json" in m["files"]
    else:
        assert json.loads(multi["messages"]) == MULTI and json.loads(multi["meta"]) == {"turns": 2}


def test_same_state_exports_byte_identical_files_whatever_the_batch_size(approved, tmp_path):
    _, store, settings, _ = approved
    a = export_snapshot(store, settings, "parquet", tmp_path / "a", seed=7)
    first = {p.name: p.read_bytes() for p in (tmp_path / "a").iterdir()}
    small = settings.model_copy(update={"export": settings.export.model_copy(update={"batch_size": 3})})
    b = export_snapshot(store, small, "parquet", tmp_path / "b", seed=7)
    c = export_snapshot(store, settings, "parquet", tmp_path / "a", seed=7, overwrite=True)
    assert a["files"] == b["files"] == c["files"] and a["snapshot_id"] == c["snapshot_id"]
    assert {p.name: p.read_bytes() for p in (tmp_path / "a").iterdir()} == first  # manifest.json included
    for name in a["files"]:
        assert (tmp_path / "b" / name).read_bytes() == first[name]
    other = export_snapshot(store, settings, "parquet", tmp_path / "c", seed=8)
    assert {s: x["count"] for s, x in other["splits"].items()} != {s: x["count"] for s, x in a["splits"].items()} \
        or other["files"] != a["files"]


def test_refusals_are_clear_and_leave_nothing_behind(approved, tmp_path):
    _, store, settings, _ = approved
    out = tmp_path / "snap"
    export_snapshot(store, settings, "openai", out)
    with pytest.raises(UsageError, match="already exists .* --overwrite"):
        export_snapshot(store, settings, "openai", out)
    (tmp_path / "notes").mkdir()
    with pytest.raises(UsageError, match="not a stillroom snapshot"):
        export_snapshot(store, settings, "openai", tmp_path / "notes", overwrite=True)
    with pytest.raises(UnknownName, match="alpaca"):
        export_snapshot(store, settings, "csv", tmp_path / "x")
    with pytest.raises(UsageError, match="adding up to 1"):
        export_snapshot(store, settings, "openai", tmp_path / "x", split=[0.5, 0.1, 0.1])
    strict = validate_settings({"curate": {"gates": {"numeric_fidelity_rate_min": 0.99}}})
    with pytest.raises(StillroomError, match="numeric_fidelity_rate .* --force"):
        export_snapshot(store, strict, "openai", tmp_path / "x")
    m = export_snapshot(store, strict, "openai", tmp_path / "x", force=True)
    assert m["forced"] is True and m["failing_gates"] == ["numeric_fidelity_rate"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes", "p", "snap", "x"]  # no temp folders left


def test_a_split_that_would_be_empty_is_refused(tmp_path):
    _, store = new_project(tmp_path / "p")
    for d in range(2):
        set_score(store, add_items(store, add_doc(store, f"doc{d}"), 3, prefix=f"d{d}"), 0.9)
    settings = validate_settings({})
    with pytest.raises(UsageError, match="needs at least 3 source documents .* has 2"):
        export_snapshot(store, settings, "openai", tmp_path / "s")
    m = export_snapshot(store, settings, "openai", tmp_path / "s", split=[0.5, 0.5, 0])
    assert {k: v["count"] for k, v in m["splits"].items()} == {"train": 3, "val": 3}


def test_verify_names_the_changed_file(approved, tmp_path, monkeypatch):
    project, store, settings, _ = approved
    out = tmp_path / "snap"
    export_snapshot(store, settings, "llamafactory", out)
    assert verify_path(out)["ok"]
    runner = CliRunner()
    result = runner.invoke(app, ["verify", str(out)])
    assert result.exit_code == 0 and "ok, 4 files" in result.stderr
    with open(out / "val.jsonl", "a", encoding="utf-8") as f:
        f.write("{}\n")
    (out / "extra.txt").write_text("x")
    (out / "test.jsonl").unlink()
    r = verify_path(out)
    assert (r["changed"], r["missing"], r["extra"], r["ok"]) == (["val.jsonl"], ["test.jsonl"], ["extra.txt"], False)
    result = runner.invoke(app, ["verify", str(out)])
    assert result.exit_code == 1 and "val.jsonl: changed" in result.stderr and "test.jsonl: missing" in result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["files"]["val.jsonl"] = "0" * 64
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert any("snapshot_id" in p for p in verify_path(out)["problems"])
    with pytest.raises(UsageError, match="not found"):
        verify_path(tmp_path / "nothing")


def test_export_cli(approved, tmp_path, monkeypatch):
    project, store, settings, _ = approved
    project.config_path.write_text(project.config_path.read_text().replace("numeric_fidelity_rate_min = 0.9",
                                                                           "numeric_fidelity_rate_min = 0.5"))
    monkeypatch.chdir(project.root)
    result = CliRunner().invoke(app, ["export", "--format", "sharegpt", "--out", str(tmp_path / "s"),
                                      "--split", "0.6,0.2,0.2", "--seed", "3", "--json"])
    assert result.exit_code == 0, result.output
    m = json.loads(result.stdout)
    assert m["format"] == "sharegpt" and m["seed"] == 3 and m["split_shares"] == {"train": 0.6, "val": 0.2, "test": 0.2}
    assert json.loads((tmp_path / "s" / "manifest.json").read_text())["snapshot_id"] == m["snapshot_id"]


def test_verify_dispatches_on_the_manifest_kind(tmp_path):
    from stillroom.train.manifest import write_manifest

    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_model.safetensors").write_bytes(b"weights")
    write_manifest(folder, snapshot_id="snap_x", snapshot_hash="h", base_model="m", base_hash="b", config={},
                   metrics={})
    runner = CliRunner()
    result = runner.invoke(app, ["verify", str(folder)])
    assert result.exit_code == 0 and "adapter" in result.stderr
    (folder / "adapter_model.safetensors").write_bytes(b"tampered")
    result = runner.invoke(app, ["verify", str(folder)])
    assert result.exit_code == 1 and "adapter_model.safetensors: changed" in result.stderr


def test_parquet_bytes_do_not_depend_on_how_the_store_cut_its_batches(tmp_path):
    """The store's batches vary with its thread count and the batch size; a Parquet file's pages must not."""
    import random

    import pyarrow as pa

    from stillroom.curate.exporters.parquet import Parquet

    r = random.Random(5)
    n = 6000  # several MB of text: more than one data page per column chunk
    table = pa.table({"id": [f"itm_{i:05d}" for i in range(n)], "task": ["qa"] * n, "messages": ["[]"] * n,
                      "meta": [None] * n, "question": [f"问题{i}？" for i in range(n)],
                      "answer": ["".join(r.choices("报销审批财务部门票据出差住宿交通标准0123456789", k=400)) for _ in range(n)]})
    cuts = {"whole": table.to_batches(), "777": table.to_batches(777),
            "uneven": [table.slice(a, b - a).to_batches()[0] for a, b in [(0, 2880), (2880, 2881), (2881, n)]]}
    files = {}
    for name, batches in cuts.items():
        assert Parquet().write(tmp_path / f"{name}.parquet", iter(batches)) == n
        files[name] = (tmp_path / f"{name}.parquet").read_bytes()
    assert files["whole"] == files["777"] == files["uneven"]
    assert pq.read_table(tmp_path / "777.parquet").equals(table.cast(pq.read_table(tmp_path / "777.parquet").schema))


def test_an_item_whose_messages_are_not_a_list_is_named_and_nothing_is_written(approved, tmp_path):
    _, store, settings, ids = approved
    with store.transaction() as con:
        con.execute("UPDATE items SET messages = '{\"role\": \"user\"}' WHERE id = ?", [ids["passing"][3]])
    for fmt in ("openai", "sharegpt"):
        with pytest.raises(StillroomError, match=f"item {ids['passing'][3]}: messages are not a JSON list.*nothing "
                                                 "was written"):
            export_snapshot(store, settings, fmt, tmp_path / fmt)
        assert not (tmp_path / fmt).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"]


def _alpaca_record(item):
    """The Python Alpaca exporter the SQL line replaced: the reference for its bytes."""
    msgs = item["messages"]
    system = [m["content"] for m in msgs if m["role"] == "system"]
    turns = [m for m in msgs if m["role"] != "system"]
    pairs = [(turns[i]["content"], turns[i + 1]["content"]) for i in range(0, len(turns) - 1, 2)]
    *history, (instruction, output) = pairs or [(item["question"] or "", item["answer"] or "")]
    body = {"id": item["id"], "task": item["task"], "instruction": instruction, "input": "", "output": output}
    if system:
        body["system"] = "\n".join(system)
    if history:
        body["history"] = [list(p) for p in history]
    return {**body, **({"meta": item["meta"]} if item["meta"] else {})}


def _turns(*turns):
    return [{"role": {"u": "user", "a": "assistant", "s": "system"}[role], "content": c} for role, c in turns]


def test_alpaca_lines_are_the_bytes_the_python_exporter_wrote(approved, tmp_path):
    _, store, settings, _ = approved
    tricky = 'q "x" \\ \\u001F\n\t\r\x00\x01\x0b\x1f\x7f \u2028 😀 中文 é / '
    # messages (two system turns, an odd turn, escapes, no turns, numbers), meta, question, answer
    cases = {
        "itm_t0": (_turns(("s", "系统一"), ("u", "u1"), ("a", "a1"), ("s", "s2"), ("u", "u2"), ("a", "a2"),
                           ("u", "dropped")), '{"k": {"n": [1, 2.50]}}', "q", "a"),
        "itm_t1": (_turns(("u", tricky), ("a", tricky + "\\")), "{ }", None, None),
        "itm_t2": (_turns(("s", tricky)), "null", None, "a"),
        "itm_t3": ([], '{"u": "中\\u2028"}', tricky, None),
        "itm_t4": (_turns(("u", 1.50), ("a", {"b": [1, None, True]}), ("u", None), ("a", 10**23 + 1)), "[]", "q", "a"),
    }
    with store.transaction() as con:
        for iid, (msgs, meta, q, ans) in cases.items():
            con.execute("INSERT INTO items (id, chunk_id, task, origin, question, answer, messages, meta) "
                        "SELECT ?, chunk_id, 'multiturn', 'distill', ?, ?, ?, ? FROM items WHERE id = 'itm_multi'",
                        [iid, q, ans, json.dumps(msgs, ensure_ascii=iid == "itm_t1"), meta])
    set_score(store, list(cases), 0.95)
    export_snapshot(store, settings, "alpaca", tmp_path / "a", split=[1.0, 0, 0], force=True)
    text = (tmp_path / "a" / "train.jsonl").read_text("utf-8")
    lines = {json.loads(line)["id"]: line for line in text.split("\n")[:-1]}  # not splitlines: U+2028 is in a line
    for iid, (msgs, meta, q, ans) in {**cases, "itm_multi": (MULTI, '{"turns": 2}', "住宿标准？", "每天80元。")}.items():
        item = {"id": iid, "task": "multiturn", "messages": msgs, "meta": json.loads(meta), "question": q,
                "answer": ans}
        assert lines[iid] == json.dumps(_alpaca_record(item), ensure_ascii=False, separators=(",", ":")), iid
    assert json.loads(lines["itm_t0"])["history"] == [["u1", "a1"]] and "\\u001f" in lines["itm_t1"]


@pytest.mark.parametrize("messages, why", [('[{"role": "user", "content": "q"}, 1]', "a turn is not an object"),
                                           ('[{"role": "system", "content": 5}]', "a system turn whose content")])
def test_alpaca_names_an_item_it_cannot_write(approved, tmp_path, messages, why):
    _, store, settings, ids = approved
    with store.transaction() as con:
        con.execute("UPDATE items SET messages = ? WHERE id = ?", [messages, ids["passing"][2]])
    with pytest.raises(StillroomError, match=f"item {ids['passing'][2]}: messages are not .*{why}.*nothing was "
                                             "written"):
        export_snapshot(store, settings, "alpaca", tmp_path / "a")
    assert not (tmp_path / "a").exists()


class _ChatML(Exporter):
    def record(self, item: dict) -> dict:
        text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in item["messages"])
        return with_ids(item, {"text": text})


@pytest.fixture
def chatml(monkeypatch):
    """A format added the `record(item)` way (docs/extending.md), registered for one test."""
    EXPORTERS.names()  # the built-ins first
    monkeypatch.setitem(EXPORTERS._items, "test_chatml", _ChatML)


def test_a_format_written_in_python_gets_its_records_and_the_same_snapshot(approved, tmp_path, chatml):
    """Every built-in format builds its lines in SQL; a plugin's `record` still gets one dict per item."""
    _, store, settings, _ = approved
    small = settings.model_copy(update={"export": settings.export.model_copy(update={"batch_size": 4})})
    m = export_snapshot(store, small, "test_chatml", tmp_path / "a", seed=7)
    records = {r["id"]: r for r in _all(tmp_path / "a", m)}
    assert len(records) == m["counts"]["items"] == sum(s["count"] for s in m["splits"].values())
    multi = records["itm_multi"]
    assert multi["text"].startswith("<|im_start|>system\n你是财务助手。<|im_end|>\n") and multi["meta"] == {"turns": 2}
    assert export_snapshot(store, settings, "test_chatml", tmp_path / "b", seed=7)["files"] == m["files"]


def test_every_json_lines_format_escapes_as_json_dumps_does(approved, tmp_path):
    """DuckDB's to_json writes some control characters as \\u001F; json.dumps (and a `record` format) as \\u001f."""
    _, store, settings, _ = approved
    tricky = 'q "x" \\ \\u001F\n\t\r\x00\x01\x0b\x0e\x1a\x1f\x7f \u2028 😀 中文'
    msgs = [{"role": "user", "content": tricky}, {"role": "assistant", "content": tricky + "\\"}]
    with store.transaction() as con:
        con.execute("INSERT INTO items (id, chunk_id, task, origin, question, answer, messages, meta) "
                    "SELECT 'itm_esc', chunk_id, 'qa', 'distill', 'q', 'a', ?, NULL FROM items WHERE id = 'itm_multi'",
                    [json.dumps(msgs)])
    set_score(store, ["itm_esc"], 0.95)
    for fmt, body in (("openai", {"messages": msgs}),
                      ("sharegpt", {"conversations": [{"from": "human", "value": tricky},
                                                      {"from": "gpt", "value": tricky + "\\"}]})):
        export_snapshot(store, settings, fmt, tmp_path / fmt, split=[1.0, 0, 0], force=True)
        lines = (tmp_path / fmt / "train.jsonl").read_text("utf-8").split("\n")[:-1]  # U+2028 is inside a line
        line = next(x for x in lines if x.startswith('{"id":"itm_esc"'))
        assert line == json.dumps({"id": "itm_esc", "task": "qa", **body}, ensure_ascii=False, separators=(",", ":"))
