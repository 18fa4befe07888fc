"""score_items scores each item's current revision, writes every scorer's value and evidence, and the rubric."""

from __future__ import annotations

import json

import pytest

from stillroom.curate.scoring import score_items
from stillroom.errors import ConfigError, UsageError
from stillroom.settings import Settings, validate_settings
from test_curate_scoring_helpers import SOURCE_EN, SOURCE_ZH, add_chunk, add_item, new_project, scores_of


@pytest.fixture
def store(tmp_path):
    return new_project(tmp_path / "p")[1]


def test_faithful_item_scores_well_and_altered_figure_hard_fails(store):
    chunk = add_chunk(store, SOURCE_ZH)
    good = add_item(store, "员工出差住宿费每晚的报销上限是多少？", "住宿费报销上限为每晚500元，全年累计不超过30,000元。", chunk)
    bad = add_item(store, "员工出差住宿费每晚的报销上限是多少？", "住宿费报销上限为每晚800元，全年累计不超过3万元。", chunk)
    summary = score_items(store, Settings())
    assert summary["scored"] == 2 and summary["hard_fail"] == 1

    g = scores_of(store, good)
    assert set(g) == {"numeric_fidelity", "grounding", "completeness", "clarity", "format", "refusal", "language",
                      "overall"}
    assert g["numeric_fidelity"]["value"] == 1.0 and not g["overall"]["hard_fail"]
    assert {f["text"]: f["source"] for f in g["numeric_fidelity"]["evidence"]["figures"]} == {
        "500元": "500元", "30,000元": "3万元"}
    assert g["overall"]["value"] > 0.8

    b = scores_of(store, bad)
    assert b["numeric_fidelity"]["hard_fail"] and b["numeric_fidelity"]["evidence"]["not_in_source"] == ["800元"]
    assert b["overall"]["hard_fail"] and b["overall"]["value"] == 0.0
    assert b["overall"]["evidence"]["hard_fails"] == ["numeric_fidelity"]


def test_rescoring_is_idempotent_and_revisions_are_scored_separately(store):
    chunk = add_chunk(store, SOURCE_EN)
    item = add_item(store, "How many days do staff have to file a claim?", "Claims must be filed within 40 days.", chunk)
    score_items(store, Settings())
    assert score_items(store, Settings())["scored"] == 0  # nothing new
    with store.transaction() as con:
        fixed = [{"role": "user", "content": "How many days do staff have to file a claim?"},
                 {"role": "assistant", "content": "Claims must be filed within thirty days."}]
        con.execute("INSERT INTO item_revisions (id, item_id, revision, question, answer, messages, author) "
                    "VALUES ('rev1', ?, 1, ?, ?, ?, 'ana')", [item, fixed[0]["content"], fixed[1]["content"],
                                                            json.dumps(fixed)])
    assert score_items(store, Settings())["scored"] == 1
    assert scores_of(store, item, 0)["numeric_fidelity"]["hard_fail"]
    assert not scores_of(store, item, 1)["numeric_fidelity"]["hard_fail"]
    assert score_items(store, Settings(), [item])["scored"] == 1
    assert store.scalar("SELECT count(*) FROM scores WHERE item_id = ? AND revision = 1 AND scorer = 'overall'",
                        [item]) == 1


@pytest.mark.parametrize("question, answer, meta, scorer, problem", [
    ("根据上文，报销上限是多少？", "报销上限为每晚500元。", {}, "clarity", "refers to a context"),
    ("报销上限是多少？", "作为一个AI，我无法回答这个问题。", {}, "refusal", "作为一个AI"),
    ("报销上限是多少？", "The limit is 500 yuan per night.", {}, "language", "en"),
    ("报销上限是多少？", '{"limit": "500元"', {}, "format", "not valid JSON"),
])
def test_each_problem_is_caught_with_evidence(store, question, answer, meta, scorer, problem):
    chunk = add_chunk(store, SOURCE_ZH)
    task = "json_task" if "JSON" in problem else "qa"
    item = add_item(store, question, answer, chunk, task=task, meta=meta)
    score_items(store, Settings())
    s = scores_of(store, item)[scorer]
    assert s["value"] < 1.0 and problem in json.dumps(s["evidence"], ensure_ascii=False)


def test_json_schema_template_and_expected_refusal(store):
    chunk = add_chunk(store, SOURCE_ZH)
    schema = {"type": "object", "properties": {"limit": {"type": "integer"}}, "required": ["limit"]}
    ok = add_item(store, "每晚住宿上限是多少元？", '{"limit": 500}', chunk, task="json_task", meta={"json_schema": schema})
    wrong = add_item(store, "每晚住宿上限是多少元？", '{"limit": "五百"}', chunk, task="json_task",
                     meta={"json_schema": schema})
    tpl = add_item(store, "住宿费上限是多少？", "### 结论\n每晚500元。\n### 依据\n第三条。", chunk, task="template",
                   meta={"template": ["### 结论", "### 依据"]})
    swapped = add_item(store, "住宿费上限是多少？", "### 依据\n第三条。\n### 结论\n每晚500元。", chunk, task="template",
                       meta={"template": ["### 结论", "### 依据"]})
    refused = add_item(store, "公司的股票代码是什么？", "抱歉，文档中没有提及这一信息。", chunk, meta={"refusal": True})
    answered = add_item(store, "公司的股票代码是什么？", "股票代码是每晚500元。", chunk, meta={"refusal": True})
    score_items(store, Settings())
    fmt = {i: scores_of(store, i)["format"]["value"] for i in (ok, wrong, tpl, swapped)}
    assert fmt == {ok: 1.0, wrong: 0.0, tpl: 1.0, swapped: 0.0}
    assert scores_of(store, refused)["refusal"]["value"] == 1.0
    assert scores_of(store, answered)["refusal"]["hard_fail"]


def test_missing_chunk_and_sourceless_import(store):
    gone = add_item(store, "上限是多少？", "上限为500元。", "chk_gone")
    imported = add_item(store, "What is the limit?", "The limit is 500 dollars.", None)
    summary = score_items(store, Settings())
    assert summary["missing_source"] == 1
    s = scores_of(store, gone)
    assert s["numeric_fidelity"]["hard_fail"] and "re-ingest" in s["numeric_fidelity"]["evidence"]["error"]
    s = scores_of(store, imported)
    assert "numeric_fidelity" not in s and "grounding" not in s and not s["overall"]["hard_fail"]


def test_weights_shape_the_overall_score(store):
    chunk = add_chunk(store, SOURCE_ZH)
    item = add_item(store, "根据上文，报销上限是多少？", "每晚500元。", chunk)  # clarity 0.5, the rest high
    cfg = Settings().curate.model_copy(update={"weights": {"clarity": 1.0}})
    score_items(store, cfg)
    assert scores_of(store, item)["overall"]["value"] == pytest.approx(scores_of(store, item)["clarity"]["value"])


@pytest.mark.parametrize("weights, message", [
    ({"clarity": -1.0}, "must be finite numbers >= 0"),
    ({"clarity": float("inf")}, "must be finite numbers >= 0"),
    ({"clarity": float("nan")}, "must be finite numbers >= 0"),
    ({"clarity": 0.0}, "add up to 0"),
    ({"clarity": 1e308, "format": 1e308}, "too large to add up"),
])
def test_invalid_weights_are_config_errors(weights, message):
    with pytest.raises(ConfigError, match=message):
        validate_settings({"curate": {"weights": weights}})


def test_unknown_scorer_names_the_known_ones(store):
    cfg = Settings().curate.model_copy(update={"weights": {"vibes": 1.0}})
    with pytest.raises(UsageError, match="unknown scorer.*vibes.*known: clarity"):
        score_items(store, cfg)


def test_every_assistant_turn_of_a_multiturn_item_is_checked(store):
    chunk = add_chunk(store, SOURCE_ZH)
    messages = [{"role": "user", "content": "住宿费每晚上限是多少？"}, {"role": "assistant", "content": "每晚500元。"},
                {"role": "user", "content": "全年累计呢？"}, {"role": "assistant", "content": "全年不超过三万元。"}]
    good = add_item(store, messages[0]["content"], messages[-1]["content"], chunk, task="multiturn", messages=messages)
    messages_bad = [*messages[:1], {"role": "assistant", "content": "每晚600元。"}, *messages[2:]]
    bad = add_item(store, messages[0]["content"], messages[-1]["content"], chunk, task="multiturn",
                   messages=messages_bad)
    score_items(store, Settings())
    assert scores_of(store, good)["numeric_fidelity"]["value"] == 1.0
    assert scores_of(store, good)["format"]["value"] == 1.0
    assert scores_of(store, bad)["numeric_fidelity"]["evidence"]["not_in_source"] == ["600元"]


def test_truncated_and_off_topic_answers_lose_completeness(store):
    chunk = add_chunk(store, SOURCE_ZH)
    q = "员工出差住宿费每晚的报销上限是多少？"
    whole = add_item(store, q, "员工出差住宿费报销上限为每晚500元。", chunk)
    cut = add_item(store, q, "员工出差住宿费报销上限为每晚500元，" + "超出部分由员工自行承担，" * 10 + "并且需要在", chunk)
    flagged = add_item(store, q, "员工出差住宿费报销上限为每晚500元。", chunk, meta={"finish_reason": "length"})
    off = add_item(store, q, "本办法自2024年3月1日起施行。", chunk)
    score_items(store, Settings())
    c = {i: scores_of(store, i)["completeness"] for i in (whole, cut, flagged, off)}
    assert c[whole]["value"] == 1.0
    assert c[cut]["evidence"]["truncated"] and c[flagged]["evidence"]["truncated"]
    assert c[off]["value"] < c[whole]["value"] and "key terms" in c[off]["evidence"]["problems"][0]


def test_a_new_scorer_is_one_class_and_a_setting(store):
    from stillroom.curate.scorers import SCORERS, Score, Scorer

    @SCORERS.register("test_no_competitors")
    class NoCompetitors(Scorer):
        def score(self, item):
            named = [b for b in ("ACME",) if b in item.assistant_text]
            return Score(0.0 if named else 1.0, {"named": named}, hard_fail=bool(named))

    chunk = add_chunk(store, SOURCE_EN)
    item = add_item(store, "Who reimburses the claims?", "ACME reimburses claims filed within 30 days.", chunk)
    cfg = Settings().curate.model_copy(update={"scorers": ["grounding", "test_no_competitors"],
                                               "weights": {"grounding": 1.0, "test_no_competitors": 1.0}})
    score_items(store, cfg)
    s = scores_of(store, item)
    assert set(s) == {"grounding", "test_no_competitors", "overall"}
    assert s["test_no_competitors"]["evidence"] == {"named": ["ACME"]} and s["overall"]["hard_fail"]


def test_items_are_read_in_segments_and_pages_and_each_scored_once(store, monkeypatch):
    """Segments are row-number ranges of the items to score: ones already scored leave gaps that must not be rescored."""
    from stillroom.curate import scoring

    chunks = [add_chunk(store, SOURCE_ZH, seq=i) for i in range(3)]
    items = [add_item(store, f"第{i}项：住宿费每晚的报销上限是多少？", f"每晚不超过500元（第{i}项）。", chunks[i % 3])
             for i in range(11)]
    monkeypatch.setattr(scoring, "SEGMENT", 4)
    monkeypatch.setattr(scoring, "PAGE", 3)
    assert score_items(store, Settings(), items[2:9:3])["scored"] == 3
    assert score_items(store, Settings())["scored"] == 8
    rows = store.query("SELECT item_id, count(*), count(DISTINCT scorer) FROM scores GROUP BY item_id ORDER BY item_id")
    assert [r[0] for r in rows] == sorted(items) and {(n, d) for _, n, d in rows} == {(8, 8)}
    assert score_items(store, Settings(), force=True)["scored"] == 11
    assert store.scalar("SELECT count(*) FROM scores") == 88


def test_a_revision_scored_elsewhere_after_the_plan_is_not_scored_twice(store, monkeypatch):
    """The store is let go between segments: a reviewer's edit (which re-scores its revision) or a second `curate`
    can score an item this run planned. Its rows must not go in twice (`scores` has no key to stop them)."""
    from stillroom.curate import scoring
    from stillroom.curate.state import list_items

    chunk = add_chunk(store, SOURCE_ZH)
    items = [add_item(store, f"第{i}项：住宿费每晚的报销上限是多少？", f"每晚不超过500元（第{i}项）。", chunk)
             for i in range(5)]
    monkeypatch.setattr(scoring, "SEGMENT", 2)
    monkeypatch.setattr(scoring, "PAGE", 1)
    read = scoring._pages

    def pages_while_another_process_scores(store, rowids):
        for n, batch in enumerate(read(store, rowids)):
            if n == 2:  # segment 1 is written, segment 2 read: an item of it and one of segment 3 are scored
                score_items(store, Settings(), [items[3], items[4]])
            yield batch

    monkeypatch.setattr(scoring, "_pages", pages_while_another_process_scores)
    assert score_items(store, Settings())["scored"] == 3
    counts = store.query("SELECT item_id, revision, scorer, count(*) FROM scores GROUP BY ALL HAVING count(*) > 1")
    assert counts == []
    assert store.scalar("SELECT count(*) FROM scores WHERE scorer = 'overall'") == 5
    assert sorted(i["id"] for i in list_items(store, Settings())) == sorted(items)
