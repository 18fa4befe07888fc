"""Tasks, prompts, reply validation and target-mix routing: no provider, no network."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from stillroom.distill import plan, prompts
from stillroom.distill.provider import Completion, Request
from stillroom.distill.tasks import TASKS, Chunk, load_tasks
from stillroom.distill.tasks._schema import model_from_schema
from stillroom.distill.validate import complete_validated, parse, repair
from stillroom.errors import UnknownName, UsageError
from stillroom.settings.distill import DistillSettings
from stillroom.train.metrics import key_point_coverage

BUILTINS = ["qa", "numeric_qa", "multiturn", "template", "worked_problem"]
ZH = Chunk("c1", "一般工作人员在直辖市出差，每人每天住宿费不超过500元。", "第三章", "差旅.pdf", True)
EN = Chunk("c2", "Staff travelling to London may claim up to GBP 180 per night.", "3 Hotels", "travel.pdf", True)

FILTER_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["kind", "order", "cutoff_hz"],
    "properties": {"kind": {"enum": ["lowpass", "highpass", "bandpass"]},
                   "order": {"type": "integer", "minimum": 1, "maximum": 12},
                   "cutoff_hz": {"type": "number", "exclusiveMinimum": 0},
                   "window": {"type": ["string", "null"]}},
}


def tasks(*names: str, **settings) -> dict:
    return load_tasks(list(names), DistillSettings(**settings), Path("."))


def test_registry_lists_every_builtin_task():
    assert TASKS.names() == sorted(BUILTINS + ["json_task", "json_dialog"])


def test_the_tasks_setting_lists_every_builtin_task():
    words = set(re.findall(r"\w+", DistillSettings.model_fields["tasks"].description))
    assert set(TASKS.names()) <= words, sorted(set(TASKS.names()) - words)


@pytest.mark.parametrize("name", BUILTINS)
def test_every_few_shot_example_passes_its_own_schema_and_checks(name):
    task = tasks(name)[name]
    for lang in ("zh", "en"):
        prompt = task.spec.prompt(lang)
        assert prompt.examples, f"{name} [{lang}] has no few-shot example"
        for ex in prompt.examples:
            reply = task.model().model_validate(ex.output)
            assert task.check(reply, Chunk("x", ex.chunk)) == []
            assert task.to_items(reply, Chunk("x", ex.chunk))


@pytest.mark.parametrize("name", BUILTINS)
def test_render_follows_the_chunk_language_and_carries_schema_and_few_shots(name):
    task = tasks(name)[name]
    zh, en = task.render(ZH), task.render(EN)
    assert zh[0]["role"] == "system" and "JSON Schema" in zh[0]["content"]
    assert "只输出一个 JSON 对象" in zh[0]["content"] and "Reply with one JSON object" in en[0]["content"]
    assert zh[-1]["content"].endswith(ZH.text) and "第三章" in zh[-1]["content"]
    shots = [m for m in zh[1:-1] if m["role"] == "assistant"]
    assert shots and all(json.loads(m["content"]) for m in shots)
    assert task.prompt_hash(ZH) != task.prompt_hash(EN)
    assert task.prompt_hash(ZH) == tasks(name)[name].prompt_hash(Chunk("other", "另一段中文文字，内容不同。"))


def test_prompt_hash_changes_with_the_prompt_and_template_sections():
    a = tasks("template")["template"]
    b = tasks("template", template_sections=["## Answer", "## Why"])["template"]
    assert a.prompt_hash(ZH) != b.prompt_hash(ZH)
    assert "## Answer\n## Why" in b.render(ZH)[0]["content"]


def test_numeric_qa_requires_figures_copied_exactly():
    task = tasks("numeric_qa")["numeric_qa"]
    reply = task.model().model_validate({"question": "住宿费上限是多少？", "answer": "每天不超过五百元。",
                                         "figures": [{"text": "五百元", "meaning": "上限"}]})
    problems = task.check(reply, ZH)
    assert any("does not appear verbatim" in p for p in problems)
    good = task.model().model_validate({"question": "住宿费上限是多少？", "answer": "每天不超过500元。",
                                        "figures": [{"text": "500元", "meaning": "上限"}]})
    assert task.check(good, ZH) == []


def test_multiturn_checks_alternation_and_follow_up_length():
    task = tasks("multiturn")["multiturn"]
    bad = task.model().model_validate({"pattern": "follow_up", "turns": [
        {"role": "user", "content": "多少钱？"}, {"role": "assistant", "content": "去哪个城市？"}]})
    assert any("at least 4 turns" in p for p in task.check(bad, ZH))
    wrong_order = task.model().model_validate({"pattern": "direct", "turns": [
        {"role": "assistant", "content": "hi"}, {"role": "user", "content": "hello"}]})
    assert any("alternate" in p for p in task.check(wrong_order, ZH))


def test_template_needs_every_section_in_order_and_writes_a_refusal_item():
    task = tasks("template")["template"]
    reply = {"question": "上海三晚能报多少？", "out_of_scope_question": "健身房能报吗？", "refusal": "文件未涉及。"}
    swapped = task.model().model_validate({**reply, "answer": "### 推导\n500×3\n### 结论\n1500元\n### 检查\n对"})
    assert task.check(swapped, ZH)
    good = task.model().model_validate({**reply, "answer": "### 结论\n1500元\n### 推导\n500×3\n### 检查\n对"})
    assert task.check(good, ZH) == []
    items = task.to_items(good, ZH)
    assert [i.meta for i in items] == [{"template": ["### 结论", "### 推导", "### 检查"], "key_points": []},
                                       {"refusal": True}]
    assert len(tasks("template", template_refusals=False)["template"].to_items(good, ZH)) == 1


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_template_keeps_its_key_points_as_qa_does_so_eval_can_score_them(lang):
    task = tasks("template")["template"]
    example = task.spec.prompt(lang).examples[0]
    solved, refusal = task.to_items(task.model().model_validate(example.output), ZH)
    points = example.output["key_points"]
    assert points and solved.meta == {"template": ["### 结论", "### 推导", "### 检查"], "key_points": points}
    assert refusal.meta == {"refusal": True}
    assert key_point_coverage(solved.messages[1]["content"], points) == 1.0  # the example copies them from its answer
    assert key_point_coverage(refusal.messages[1]["content"], points) == 0.0


def test_json_task_validates_the_answer_against_the_users_schema(tmp_path):
    (tmp_path / "filter.json").write_text(json.dumps(FILTER_SCHEMA))
    task = load_tasks(["json_task"], DistillSettings(json_schema="filter.json"), tmp_path)["json_task"]
    ok = task.model().model_validate({"question": "设计一个1kHz四阶低通", "answer": {"kind": "lowpass", "order": 4,
                                                                          "cutoff_hz": 1000}})
    item = task.to_items(ok, ZH)[0]
    assert json.loads(item.messages[1]["content"]) == {"kind": "lowpass", "order": 4, "cutoff_hz": 1000.0}
    assert item.meta == {"json_schema": FILTER_SCHEMA}
    for bad in ({"kind": "notch", "order": 4, "cutoff_hz": 1}, {"kind": "lowpass", "order": 40, "cutoff_hz": 1},
                {"kind": "lowpass", "order": 4, "cutoff_hz": 0}, {"kind": "lowpass", "order": 4, "cutoff_hz": 1, "x": 1}):
        reply, reason, error = parse(json.dumps({"question": "设计一个滤波器", "answer": bad}), task.model(), lambda r: [])
        assert reply is None and reason == "invalid" and "answer" in error


def test_a_number_field_exports_what_the_model_wrote(tmp_path):
    (tmp_path / "filter.json").write_text(json.dumps(FILTER_SCHEMA))
    task = load_tasks(["json_task"], DistillSettings(json_schema="filter.json"), tmp_path)["json_task"]
    for written, exported in (("915", '"cutoff_hz": 915}'), ("915.0", '"cutoff_hz": 915.0}'), ("2.5", '"cutoff_hz": 2.5}')):
        raw = f'{{"question": "设计一个低通滤波器", "answer": {{"kind": "lowpass", "order": 4, "cutoff_hz": {written}}}}}'
        reply, reason, _ = parse(raw, task.model(), lambda r: [])
        assert reason == "" and task.to_items(reply, ZH)[0].messages[1]["content"].endswith(exported)
        assert exported.replace(" ", "")[:-1] in reply.model_dump_json()
    for bad in ("0", "-3", '"fast"'):  # an int is still held to the number's bounds and type
        raw = f'{{"question": "设计一个低通滤波器", "answer": {{"kind": "lowpass", "order": 4, "cutoff_hz": {bad}}}}}'
        assert parse(raw, task.model(), lambda r: [])[1] == "invalid", bad
    nested = model_from_schema({"type": "object", "$defs": {"hz": {"type": "number", "maximum": 10}}, "properties": {
        "hz": {"type": ["number", "null"]}, "bands": {"type": "array", "items": {"$ref": "#/$defs/hz"}}}})
    assert nested.model_validate({"hz": 3, "bands": [1, 2.5]}).model_dump() == {"hz": 3, "bands": [1, 2.5]}
    assert type(nested.model_validate({"hz": 3}).hz) is int
    with pytest.raises(ValidationError):  # the $ref's bound holds
        nested.model_validate({"bands": [11]})


def test_json_task_without_a_schema_or_with_an_unsupported_keyword_names_the_fix(tmp_path):
    with pytest.raises(UsageError, match="json_schema ="):
        load_tasks(["json_task"], DistillSettings(), tmp_path)["json_task"].model()
    with pytest.raises(UsageError, match="allOf is not supported"):
        model_from_schema({"type": "object", "properties": {"a": {"allOf": [{"type": "string"}]}}})


def test_user_task_from_toml_and_yaml(tmp_path):
    (tmp_path / "faq.toml").write_text('''
name = "faq"
[en]
system = "Write an FAQ entry for $document."
user = "$heading\\n\\n$chunk"
[[en.examples]]
chunk = "Offices close at 6 pm."
output = { question = "When do offices close?", answer = "At 6 pm." }
''')
    (tmp_path / "steps.yaml").write_text('''
name: steps
zh:
  system: 根据片段写出操作步骤。
  user: $chunk
output_schema:
  type: object
  required: [question, answer]
  properties:
    question: {type: string}
    answer: {type: object, required: [steps], properties: {steps: {type: array, items: {type: string}, minItems: 1}}}
''')
    settings = DistillSettings(task_files=["faq.toml", "steps.yaml"])
    loaded = load_tasks(["faq", "steps", "qa"], settings, tmp_path)
    faq, steps = loaded["faq"], loaded["steps"]
    assert "Write an FAQ entry for travel.pdf." in faq.render(EN)[0]["content"]
    assert faq.to_items(faq.model().model_validate({"question": "q?", "answer": "a"}), EN)[0].messages[1]["content"] == "a"
    item = steps.to_items(steps.model().model_validate({"question": "怎么报销？", "answer": {"steps": ["填单", "交票"]}}), ZH)[0]
    assert json.loads(item.messages[1]["content"]) == {"steps": ["填单", "交票"]}
    assert steps.render(EN)[0]["content"].startswith("根据片段写出操作步骤。")  # only zh given: used for every chunk
    with pytest.raises(UnknownName, match="known: faq, json_dialog, json_task, multiturn, numeric_qa, qa, steps, template, worked_problem"):
        load_tasks(["nope"], settings, tmp_path)


def test_user_task_errors_name_the_file_and_the_problem(tmp_path):
    (tmp_path / "bad.toml").write_text('name = "bad"\n[en]\nsystem = "x"\nuser = "$chunk and $color"\n')
    with pytest.raises(UsageError, match=r"\['color'\].*allowed: \$chunk, \$heading, \$document"):
        load_tasks(["bad"], DistillSettings(task_files=["bad.toml"]), tmp_path)
    (tmp_path / "typo.toml").write_text('name = "typo"\n[en]\nsystem = "x"\nuser = "$chunk"\nexamples = "no"\n')
    with pytest.raises(UsageError, match=r"(?s)typo.toml: 1 problem.*en.examples: Input should be a valid list"):
        load_tasks(["typo"], DistillSettings(task_files=["typo.toml"]), tmp_path)
    (tmp_path / "qa.toml").write_text('name = "qa"\n[en]\nsystem = "x"\nuser = "$chunk"\n')
    with pytest.raises(UsageError, match="taken by a built-in"):
        load_tasks(["qa"], DistillSettings(task_files=["qa.toml"]), tmp_path)


def test_repair_strips_fences_and_trailing_commas_but_not_inside_strings():
    text = '```json\n{"question": "a, }", "answer": "b",\n "key_points": ["x", "y",],}\n```'
    assert json.loads(repair(text)) == {"question": "a, }", "answer": "b", "key_points": ["x", "y"]}
    assert repair('{"a": "quote \\" ,]"}') == '{"a": "quote \\" ,]"}'


def _replies(*texts: str, finish: str = "stop"):
    sent: list[Request] = []
    queue = list(texts)

    def complete(req: Request) -> Completion:
        sent.append(req)
        return Completion(text=queue.pop(0), finish_reason=finish if not queue else "stop")
    return complete, sent


def test_an_invalid_reply_is_re_asked_once_with_the_validation_error():
    task = tasks("qa")["qa"]
    req = Request(messages=task.render(EN), json_schema=task.json_schema)
    complete, sent = _replies('{"question": "Hi?"}', '{"question": "How much in London?", "answer": "GBP 180"}')
    out = complete_validated(complete, req, task.model(), lambda r: [])
    assert out.reply is not None and [a.status for a in out.attempts] == ["invalid", "ok"]
    reask = sent[1].messages
    assert reask[-2] == {"role": "assistant", "content": '{"question": "Hi?"}'}
    assert "answer: Field required" in reask[-1]["content"]


def test_a_reply_that_fails_twice_is_a_recorded_failure_with_raw_text():
    task = tasks("qa")["qa"]
    complete, sent = _replies("Sure! {question: oops", "still not json")
    out = complete_validated(complete, Request(messages=task.render(EN)), task.model(), lambda r: [])
    assert out.reply is None and out.reason == "invalid" and out.raw == "still not json" and len(sent) == 2


def test_truncated_and_refused_replies_fail_without_a_re_ask():
    task = tasks("qa")["qa"]
    complete, sent = _replies('{"question": "How much is', finish="length")
    out = complete_validated(complete, Request(messages=task.render(EN)), task.model(), lambda r: [])
    assert (out.reason, len(sent), out.raw) == ("truncated", 1, '{"question": "How much is')
    complete, sent = _replies('{"refused_because": "only a table of contents"}')
    out = complete_validated(complete, Request(messages=task.render(EN)), task.model(), lambda r: [])
    assert (out.reason, out.error, len(sent)) == ("refused", "only a table of contents", 1)


def _chunks(n: int, every_figure: int) -> list[Chunk]:
    return [Chunk(f"c{i}", f"text {i}", has_figures=i % every_figure == 0) for i in range(n)]


def test_chunks_with_figures_go_to_numeric_qa_until_the_target_share_is_met():
    ts = tasks("qa", "numeric_qa")
    slots = plan.assign(_chunks(100, 2), ts, {"numeric_qa": 0.3}, 1, {})
    numeric = [c for c, _, t in slots if t == "numeric_qa"]
    assert len(slots) == 100 and len(numeric) == 30
    assert all(c.has_figures for c in numeric)
    scarce = plan.assign(_chunks(100, 5), ts, {"numeric_qa": 0.3}, 1, {})
    assert sum(t == "numeric_qa" for *_, t in scarce) == 20  # every figure chunk, still short of 30%


def test_figures_only_share_is_spread_over_every_document_in_proportion():
    ts = tasks("qa", "numeric_qa")
    chunks = [Chunk(f"{d}{i}", f"text {i}", document=f"{d}.md", has_figures=True)
              for d, n in (("a", 10), ("b", 10), ("c", 20)) for i in range(n)]
    slots = plan.assign(chunks, ts, {"numeric_qa": 0.3}, 1, {})
    assert [c for c, *_ in slots] == chunks  # reading order, whatever order they were routed in
    per_doc = {d: sum(t == "numeric_qa" for c, _, t in slots if c.document == d) for d in ("a.md", "b.md", "c.md")}
    assert per_doc == {"a.md": 3, "b.md": 3, "c.md": 6}  # 12 = 30% of 40, not the first 12 chunks of a and b
    assert plan.assign(chunks, ts, {"numeric_qa": 0.3}, 1, {}) == slots
    # an earlier run that spent the quota on the first document keeps its routing; nothing is re-routed
    earlier = {(c.id, 0): "numeric_qa" for c in chunks[:10]} | {(c.id, 0): "qa" for c in chunks[10:12]}
    again = plan.assign(chunks, ts, {"numeric_qa": 0.3}, 1, earlier)
    assert {(c.id, s): t for c, s, t in again if (c.id, s) in earlier} == earlier
    assert sum(t == "numeric_qa" for *_, t in again) == 12  # the quota counts what the earlier run routed


def test_routing_keeps_earlier_assignments_and_skips_slots_no_task_fits():
    ts = tasks("qa", "numeric_qa", "multiturn")
    chunks = _chunks(30, 3)
    first = plan.assign(chunks, ts, {}, 2, {})
    earlier = {(c.id, s): t for c, s, t in first[:20]}
    again = plan.assign(chunks, ts, {}, 2, earlier)
    assert again[:20] == first[:20] and len(again) == 60
    only_numeric = plan.assign(chunks, tasks("numeric_qa"), {}, 1, {})
    assert len(only_numeric) == 10


def test_detect_language():
    assert prompts.detect_language("住宿费不超过500元 per night") == "zh"
    assert prompts.detect_language("Claims in 人民币 are paid monthly by the finance team") == "en"


def test_the_task_file_example_in_the_docs_loads_and_renders(tmp_path):
    doc = (Path(__file__).resolve().parents[1] / "docs" / "distill.md").read_text(encoding="utf-8")
    example = doc.split("```toml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "faq.toml").write_text(example, encoding="utf-8")
    faq = load_tasks(["faq"], DistillSettings(task_files=["faq.toml"]), tmp_path)["faq"]
    messages = faq.render(EN)
    assert messages[0]["content"].startswith("你是本单位的客服专家") and "看情况" in messages[0]["content"]
    assert json.loads(messages[2]["content"]) == {"question": "办公室几点关门？", "answer": "工作日 18:00 关门。"}
    for ex in faq.example_replies():
        faq.model().model_validate(ex)
