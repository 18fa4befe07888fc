"""Every recipe in docs/recipes runs as its README says, against the fake provider server on 127.0.0.1.

Each test copies a recipe folder, points its provider at the fake (base_url, no client-side rate limit),
runs every `stillroom` line of the README's shell blocks through the CLI, and checks the snapshot: its
format, the split by source document, the mix and the gates, and that the eval metrics the recipe names
are computable on the exported items (references scored against themselves and against a worse answer;
no model is trained here).
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from stillroom.cli import app
from stillroom.curate.numbers import find_figures
from stillroom.distill.tasks import Chunk, load_tasks
from stillroom.distill.tasks._schema import model_from_schema
from stillroom.errors import UsageError
from stillroom.settings.distill import DistillSettings
from stillroom.project import Project
from stillroom.train.data import open_snapshot
from stillroom.train.eval import build_report
from stillroom.train.metrics import key_point_coverage, template_hit
from tests.fakellm import FakeLLMServer
from tests.fakellm.grounded import grounded_reply

RECIPES = Path(__file__).resolve().parents[1] / "docs" / "recipes"
SHELL_BLOCK = re.compile(r"```sh\n(.*?)```", re.S)
# Lines of a recipe's shell blocks the test does itself: copying the folder, cd, setting a key.
SETUP_LINE = re.compile(r"^(cp -r docs/recipes/\S+ \S+ && cd \S+|export [A-Z_]+=\S+)\s*(#.*)?$")


TESTED = ["policy-qa", "rf-filter-assistant", "em-course-tutor", "abstracts-alpaca"]


@pytest.fixture(scope="module")
def server():
    with FakeLLMServer(reply=grounded_reply) as srv:
        yield srv


def commands(recipe: str) -> list[list[str]]:
    """The `stillroom ...` lines of the README's ```sh blocks, as argv lists (comments dropped)."""
    out = []
    for block in SHELL_BLOCK.findall((RECIPES / recipe / "README.md").read_text(encoding="utf-8")):
        for line in block.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if line.startswith("stillroom "):
                out.append(shlex.split(line, comments=True)[1:])
            else:
                assert SETUP_LINE.match(line), f"{recipe}/README.md: the test does not know how to run {line!r}"
    return out


def run_recipe(recipe: str, tmp_path: Path, server: FakeLLMServer, monkeypatch) -> tuple[Path, dict[str, dict]]:
    """Copy the recipe, point it at the fake and run its README; returns the project and each command's --json."""
    root = tmp_path / recipe
    shutil.copytree(RECIPES / recipe, root)
    with (root / "stillroom.toml").open("a", encoding="utf-8") as f:
        f.write(f'\n[distill.providers.openai]\nbase_url = "{server.openai_url}"\nmodel = "fake-model"\nrpm = 0\n')
    monkeypatch.setenv("OPENAI_API_KEYS", "sk-test-recipes")
    monkeypatch.chdir(root)
    runner, summaries = CliRunner(), {}  # each command's (last) --json summary
    for argv in commands(recipe):
        result = runner.invoke(app, [*argv, "--json"])
        assert result.exit_code == 0, f"stillroom {shlex.join(argv)} → {result.exit_code}\n{result.output}"
        summaries[argv[0]] = json.loads(result.stdout)
    distilled = summaries["distill"]
    assert distilled["done"] == distilled["planned"] == distilled["calls"] > 0 and not distilled["failed"]
    return root, summaries


def documents_by_split(root: Path, snap) -> dict[str, set[str]]:
    """Which source documents each split's items come from, looked up in the project's store."""
    store = Project(root).store()
    out = {}
    for name in ("train", "val", "test"):
        ids = [ex["id"] for ex in snap.split(name)]
        rows = store.query("SELECT DISTINCT d.file_name FROM items i JOIN chunks c ON c.id = i.chunk_id "
                           "JOIN documents d ON d.id = c.document_id WHERE list_contains(?, i.id)", [ids])
        out[name] = {r[0] for r in rows}
    return out


def assert_split_by_document(docs: dict[str, set[str]]) -> None:
    assert all(docs.values()), f"a split has no document: {docs}"
    assert not (docs["train"] & docs["val"] or docs["train"] & docs["test"] or docs["val"] & docs["test"]), docs


def check_snapshot(root: Path, out: str, fmt: str) -> tuple:
    """The snapshot is intact, in `fmt`, split by source document with every split non-empty, gates passed."""
    snap = open_snapshot(root / out)
    manifest = snap.manifest
    assert manifest["format"] == fmt and not manifest["failing_gates"] and not manifest["forced"]
    assert all(manifest["splits"][s]["count"] > 0 for s in ("train", "val", "test"))
    assert manifest["split_shares"] == {"train": 0.8, "val": 0.1, "test": 0.1}
    mix = next(g for g in manifest["gates"] if g["name"] == "mix")
    assert mix["passed"] and not manifest["selection"]["shortfalls"]
    return snap, manifest


def references(examples: list[dict]) -> list[str]:
    return [[m for m in ex["messages"] if m["role"] == "assistant"][-1]["content"] for ex in examples]


def eval_report(snap, worse) -> dict:
    """The eval's own report over the test split: references as the tuned model's answers, `worse(ref)` as the base's."""
    test = snap.split("test")
    refs = references(test)
    return build_report(test, {"tuned": refs, "base": [worse(r) for r in refs]}, {}, "test")


def test_policy_qa_numeric_focus_reviewed_for_llamafactory(tmp_path, server, monkeypatch):
    root, out = run_recipe("policy-qa", tmp_path, server, monkeypatch)
    snap, manifest = check_snapshot(root, "snapshots/v1", "llamafactory")
    assert set(manifest["counts"]["by_task"]) == {"qa", "numeric_qa"}
    docs = documents_by_split(root, snap)
    assert_split_by_document(docs)
    assert sum(map(len, docs.values())) == 3  # one policy per split
    # the numeric focus: 30% or more of the exported answers state a figure, and the mix gate says so
    items = [ex for s in ("train", "val", "test") for ex in snap.split(s)]
    with_figures = sum(bool(find_figures(ref)) for ref in references(items))
    assert with_figures / len(items) >= 0.3 and manifest["selection"]["with_figures"] == with_figures
    assert manifest["counts"]["by_task"]["numeric_qa"] / len(items) >= 0.3
    # routing spreads the numeric share over the policies, so the held-out policies have numeric items too
    assert all("numeric_qa" in {ex["task"] for ex in snap.split(s)} for s in ("train", "val", "test"))
    # reviewed: every item carries a human decision, so the audit sample yields an error-rate estimate
    assert out["decide"]["items"] > 0 and manifest["error_rate"]["unreviewed_approved"] == 0
    assert manifest["error_rate"]["audited"] > 0
    # LLaMA-Factory: dataset_info.json names each split with the role/content tags its sharegpt loader needs
    info = json.loads((root / "snapshots/v1/dataset_info.json").read_text(encoding="utf-8"))
    assert set(info) == {"stillroom_train", "stillroom_val", "stillroom_test"}
    for name, entry in info.items():
        assert (root / "snapshots/v1" / entry["file_name"]).exists()
        assert entry["formatting"] == "sharegpt" and entry["columns"] == {"messages": "messages"}
        assert entry["tags"]["role_tag"] == "role" and entry["tags"]["content_tag"] == "content"
    first = json.loads((root / "snapshots/v1/train.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert [m["role"] for m in first["messages"]] == ["user", "assistant"]
    # the recipe's eval: numeric exact match, perfect on the references, zero once the figures are gone
    report = eval_report(snap, lambda ref: re.sub(r"\d", "", ref))
    assert report["overall"]["tuned"]["numeric_em"] == 1.0 and report["overall"]["base"]["numeric_em"] == 0.0
    assert report["by_task"]["tuned"]["qa"]["key_points"] == 1.0
    # the quota is enforced, not just reported: asked for more, selection drops figure-free items to reach it
    config = root / "stillroom.toml"
    config.write_text(config.read_text(encoding="utf-8").replace("numeric_min_share = 0.3", "numeric_min_share = 0.99"),
                      encoding="utf-8")
    result = CliRunner().invoke(app, ["curate", "--json"])
    selection = json.loads(result.stdout)["selection"]
    assert result.exit_code == 0 and selection["dropped"] == {"min_share:items with figures": len(items) - with_figures}
    assert selection["with_figures"] == selection["selected"] == with_figures


def test_rf_filter_assistant_multiturn_json_with_follow_ups(tmp_path, server, monkeypatch):
    root, out = run_recipe("rf-filter-assistant", tmp_path, server, monkeypatch)
    snap, manifest = check_snapshot(root, "snapshots/v1", "sharegpt")
    assert_split_by_document(documents_by_split(root, snap))
    schema = json.loads((root / "filter_spec.schema.json").read_text(encoding="utf-8"))
    spec = model_from_schema(schema, "filter_spec")
    records = [json.loads(line) for s in ("train", "val", "test")
               for line in (root / "snapshots/v1" / f"{s}.jsonl").read_text(encoding="utf-8").splitlines()]
    patterns = set()
    for rec in records:
        turns = rec["conversations"]
        assert [t["from"] for t in turns] == ["human", "gpt"] * (len(turns) // 2)
        spec.model_validate(json.loads(turns[-1]["value"]))  # the final answer is JSON the schema accepts
        assert rec["task"] == "json_dialog" and rec["meta"]["json_schema"] == schema
        patterns.add(rec["meta"]["pattern"])
        if rec["meta"]["pattern"] == "follow_up":  # asked for what was missing before answering
            assert len(turns) >= 4 and turns[1]["value"].rstrip().endswith("?")
    assert patterns == {"direct", "follow_up"}
    # whole numbers stay whole (the notes write "915 MHz", so the specification says 915, not 915.0)
    assert not [r for r in records if re.search(r"\d\.0\b", r["conversations"][-1]["value"])]
    assert any('"center_frequency_mhz": 915,' in r["conversations"][-1]["value"] for r in records)
    gates = {g["name"]: g for g in manifest["gates"]}  # json_dialog items carry a schema: the JSON gate measures them
    assert gates["json_parse_rate"]["n"] >= len(records) and gates["json_parse_rate"]["value"] == 1.0
    # the recipe's eval: JSON parse rate and per-field accuracy
    def worse(ref: str) -> str:
        data = json.loads(ref)
        data["technology"] = "LC" if data["technology"] != "LC" else "SAW"
        return json.dumps(data)

    report = eval_report(snap, worse)
    tuned, base = report["overall"]["tuned"], report["overall"]["base"]
    assert tuned["json_parse"] == tuned["json_field_acc"] == 1.0
    assert base["json_parse"] == 1.0 and 0.5 < base["json_field_acc"] < 1.0
    assert eval_report(snap, lambda ref: "The filter should be a bandpass.")["overall"]["base"]["json_parse"] == 0.0


def test_em_course_tutor_two_templated_task_types_with_refusals(tmp_path, server, monkeypatch):
    root, out = run_recipe("em-course-tutor", tmp_path, server, monkeypatch)
    snap, manifest = check_snapshot(root, "snapshots/v1", "openai")
    assert_split_by_document(documents_by_split(root, snap))
    sections = ["### 结论", "### 推导", "### 检查"]
    train = snap.split("train")
    assert {ex["task"] for ex in train} == {"template", "worked_problem"}  # one adapter learns both
    refusals = [ex for ex in train if ex["meta"].get("refusal")]
    assert refusals and all(not ex["meta"].get("template") for ex in refusals)
    for ex in train:
        answer = references([ex])[0]
        if not ex["meta"].get("refusal"):
            assert ex["meta"]["template"] == sections and template_hit(answer, sections) == 1.0
            lines = answer.splitlines()
            assert [lines.index(h) for h in sections] == sorted(lines.index(h) for h in sections)
        if ex["task"] == "worked_problem" and not ex["meta"].get("refusal"):
            assert ex["meta"]["key_points"] and key_point_coverage(answer, ex["meta"]["key_points"]) == 1.0
    gates = {g["name"]: g for g in manifest["gates"]}
    assert gates["template_hit_rate"]["passed"] and gates["refusal_rate"]["value"] == 0.0
    # the recipe's eval on the held-out chapters: key points, template hit, refusal accuracy
    held_out = snap.split("val") + snap.split("test")
    refs = references(held_out)
    worse = ["这个问题的答案是肯定的。" for _ in refs]  # no sections, no key points, no refusal
    report = build_report(held_out, {"tuned": refs, "base": worse}, {}, "val+test")
    tuned, base = report["overall"]["tuned"], report["overall"]["base"]
    assert tuned["key_points"] == tuned["template_hit"] == tuned["refusal_acc"] == 1.0
    assert base["key_points"] == base["template_hit"] == base["refusal_acc"] == 0.0
    assert {ex["task"] for ex in held_out} == {"template", "worked_problem"}  # calculations are held out too
    assert report["by_task"]["tuned"]["template"]["key_points"] == 1.0  # concept answers carry key points too


def test_abstracts_to_alpaca_split_8_1_1_by_paper(tmp_path, server, monkeypatch):
    root, out = run_recipe("abstracts-alpaca", tmp_path, server, monkeypatch)
    snap, manifest = check_snapshot(root, "snapshots/v1", "alpaca")
    docs = documents_by_split(root, snap)
    assert_split_by_document(docs)
    assert [len(docs[s]) for s in ("train", "val", "test")] == [8, 1, 1]
    assert [manifest["splits"][s]["count"] for s in ("train", "val", "test")] == [8, 1, 1]
    rec = json.loads((root / "snapshots/v1/test.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert set(rec) >= {"instruction", "input", "output"} and rec["task"] == "abstract_instructions"
    assert rec["meta"]["kind"] in ("summary", "method", "result", "limitation")
    # the recipe's eval: ROUGE-L and BLEU, perfect on the references, lower for a response cut to its first words
    report = eval_report(snap, lambda ref: " ".join(ref.split()[:6]))
    tuned, base = report["overall"]["tuned"], report["overall"]["base"]
    assert tuned["rouge_l"] == tuned["bleu"] == 1.0
    assert 0 < base["rouge_l"] < 1 and 0 <= base["bleu"] < tuned["bleu"]


def test_every_recipe_folder_has_a_readme_with_commands_and_is_in_the_index():
    folders = sorted(p.name for p in RECIPES.iterdir() if p.is_dir())
    assert folders == sorted(TESTED)
    index = (RECIPES / "README.md").read_text(encoding="utf-8")
    for name in folders:
        assert f"({name}/)" in index, f"docs/recipes/README.md does not link {name}/"
        assert commands(name)[0] == ["init"] and (RECIPES / name / "stillroom.toml").is_file()


# --- the tasks the recipes added -------------------------------------------------------------------------

SPEC = {"type": "object", "additionalProperties": False, "required": ["filter_type", "center_frequency_mhz"],
        "properties": {"filter_type": {"enum": ["bandpass", "bandstop"]},
                       "center_frequency_mhz": {"type": "number", "exclusiveMinimum": 0}}}
GNSS = Chunk("c1", "GNSS L1 pre-filter. Filter type: bandpass. Center frequency: 1575.42 MHz.", "L1", "gnss.md", True)


def test_json_dialog_checks_the_conversation_and_ends_with_the_json_answer(tmp_path):
    (tmp_path / "spec.json").write_text(json.dumps(SPEC), encoding="utf-8")
    task = load_tasks(["json_dialog"], DistillSettings(json_schema="spec.json"), tmp_path)["json_dialog"]
    turns = [{"role": "user", "content": "I need the GNSS pre-filter."},
             {"role": "assistant", "content": "Which band: L1 or L5?"}, {"role": "user", "content": "L1."}]
    answer = {"filter_type": "bandpass", "center_frequency_mhz": 1575.42}
    reply = task.model().model_validate({"pattern": "follow_up", "turns": turns, "answer": answer})
    assert task.check(reply, GNSS) == []
    item = task.to_items(reply, GNSS)[0]
    assert [m["role"] for m in item.messages] == ["user", "assistant", "user", "assistant"]
    assert json.loads(item.messages[-1]["content"]) == answer
    assert item.meta == {"json_schema": SPEC, "pattern": "follow_up"}
    ends_with_assistant = task.model().model_validate({"pattern": "direct", "turns": turns[:2], "answer": answer})
    assert "alternate" in task.check(ends_with_assistant, GNSS)[0]
    no_question = task.model().model_validate({"pattern": "follow_up", "answer": answer,
                                               "turns": [turns[0], {"role": "assistant", "content": "Noted."}, turns[2]]})
    assert "clarifying question" in task.check(no_question, GNSS)[0]
    with pytest.raises(ValidationError):  # the answer is held to the user's schema
        task.model().model_validate({"pattern": "direct", "turns": turns[:1], "answer": {"filter_type": "notch"}})
    with pytest.raises(UsageError, match="json_schema"):
        load_tasks(["json_dialog"], DistillSettings(), tmp_path)["json_dialog"].model()


def test_worked_problem_needs_sections_and_key_points_from_its_answer():
    task = load_tasks(["worked_problem"], DistillSettings(), Path("."))["worked_problem"]
    example = task.spec.prompt("zh").examples[0]
    chunk = Chunk("c1", example.chunk, has_figures=True)
    reply = task.model().model_validate(example.output)
    assert task.needs_figures and task.check(reply, chunk) == []
    solved, refusal = task.to_items(reply, chunk)
    assert solved.meta == {"template": ["### 结论", "### 推导", "### 检查"], "key_points": example.output["key_points"]}
    assert refusal.meta == {"refusal": True} and "无法" in refusal.messages[1]["content"]
    invented = task.model().model_validate({**example.output, "key_points": ["E = kq/r"]})
    assert "key point 'E = kq/r'" in task.check(invented, chunk)[0]
    unsectioned = task.model().model_validate({**example.output, "answer": "约 100 V/m，由 E = q/(4πε0 r²) 得出。"})
    assert "section headings" in " ".join(task.check(unsectioned, chunk))
