"""Review queue and audit sample, the Wilson estimate, quotas, gates, the curate pipeline and its CLI."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from stillroom.cli import app
from stillroom.curate import gates, quotas, reviews, sampling
from stillroom.curate.pipeline import curate
from stillroom.errors import ConfigError
from stillroom.settings import validate_settings
from tests.test_curate_flow_helpers import add_doc, add_items, new_project, set_score, status_of


def _settings(**curate):
    return validate_settings({"curate": curate})


def _pool(store, docs=4, per_doc=50, bad=5, low=5):
    """`docs` documents of passing items plus some hard fails and low scorers; returns ids by kind."""
    kinds = {"pass": [], "hard": [], "low": []}
    for d in range(docs):
        chunk = add_doc(store, f"doc{d}")
        ok = add_items(store, chunk, per_doc, prefix=f"p{d}")
        hard = add_items(store, chunk, bad, prefix=f"h{d}")
        lo = add_items(store, chunk, low, prefix=f"l{d}")
        for k in range(6):
            set_score(store, ok[k::6], 0.75 + 0.2 * (k % 3) / 2, figures=k % 2)
        set_score(store, hard, 0.0, hard_fail=True)
        set_score(store, lo, 0.3)
        kinds["pass"] += ok
        kinds["hard"] += hard
        kinds["low"] += lo
    return kinds


def test_wilson_interval_matches_known_values():
    assert sampling.wilson(0, 0) == (0.0, 1.0)
    low, high = sampling.wilson(0, 214)
    assert low == 0 and high == pytest.approx(0.01764, abs=1e-4)
    low, high = sampling.wilson(10, 100)  # textbook: 0.0552 – 0.1744
    assert (round(low, 4), round(high, 4)) == (0.0552, 0.1744)


def test_queue_holds_every_failure_and_a_stratified_audit_sample(tmp_path):
    _, store = new_project(tmp_path / "p")
    kinds = _pool(store)
    settings = _settings(audit_fraction=0.2)
    summary = sampling.build_queue(store, settings)
    rows = store.query("SELECT item_id, reason, stratum, priority FROM review_queue")
    by_reason = {}
    for item_id, reason, stratum, _ in rows:
        by_reason.setdefault(reason, set()).add(item_id)
    assert by_reason["hard_fail"] == set(kinds["hard"]) and by_reason["low_score"] == set(kinds["low"])
    audit = [r for r in rows if r[1] == "audit"]
    assert set(r[0] for r in audit) <= set(kinds["pass"])
    assert len(audit) == pytest.approx(0.2 * len(kinds["pass"]), abs=6)  # stochastic rounding per stratum
    strata = {r[2] for r in audit}
    assert len(strata) >= 8 and all(" × doc" in s and "band" in s for s in strata)  # task × document × band
    # hard fails first, then low scores, then the audit sample
    order = [r[1] for r in sorted(rows, key=lambda r: -r[3])]
    assert order == sorted(order, key=["hard_fail", "low_score", "audit"].index)
    assert summary["added"] == {"hard_fail": 20, "low_score": 20, "audit": len(audit)}
    # re-running draws the same sample: nothing new is added
    assert sampling.build_queue(store, settings)["added"] == {"hard_fail": 0, "low_score": 0, "audit": 0}


def test_error_rate_from_the_audited_sample(tmp_path):
    project, store = new_project(tmp_path / "p")
    kinds = _pool(store, docs=2, per_doc=40, bad=0, low=0)
    settings = _settings(audit_fraction=0.5)
    sampling.build_queue(store, settings)
    assert reviews.error_rate(store) is None
    audit = [r[0] for r in store.query("SELECT item_id FROM review_queue WHERE reason = 'audit' ORDER BY item_id")]
    for k, item in enumerate(audit):
        if k == 0:
            reviews.decide(store, item, "ann", "reject", reason_code="wrong")
        elif k == 1:
            reviews.edit(store, item, "ann", answer="每晚500元整。", settings=settings)
            reviews.decide(store, item, "ann", "approve")
        else:
            reviews.decide(store, item, "ann", "approve")
    est = sampling.error_rate_estimate(store, settings)
    n = len(audit)
    assert est["audited"] == n and est["defects"] == 2  # a reject and an edit are both defects
    assert est["high"] == pytest.approx(sampling.wilson(2, n)[1], abs=1e-4)
    assert est["text"] == f"≤ {sampling.wilson(2, n)[1]:.1%} defective at 95% confidence, from {n} audited items"
    assert est["unreviewed_approved"] == len(kinds["pass"]) - n
    assert reviews.error_rate(store)["audited"] == n


def test_quotas_cap_documents_and_meet_shares(tmp_path):
    _, store = new_project(tmp_path / "p")
    big = add_doc(store, "big")
    set_score(store, add_items(store, big, 60, prefix="b"), 0.9)
    for d in range(3):
        set_score(store, add_items(store, add_doc(store, f"small{d}"), 10, prefix=f"s{d}", task="numeric_qa"), 0.8,
                  figures=1)
    settings = _settings(quotas={"max_document_share": 0.4, "numeric_min_share": 0.5})
    with store.connect() as con:
        rep = quotas.select(con, settings)
        per_doc = dict(con.execute("SELECT document_id, count(*) FROM selection WHERE dropped IS NULL GROUP BY 1")
                       .fetchall())
    assert rep["shortfalls"] == []
    assert max(per_doc.values()) / rep["selected"] <= 0.4
    assert rep["with_figures"] / rep["selected"] >= 0.5
    assert rep["dropped"]["document_cap"] == 60 - per_doc["big"]
    # a target the pool cannot meet is reported, not hidden
    settings = _settings(quotas={"task_min_share": {"json_task": 0.1}, "max_document_share": 0.2})
    with store.connect() as con:
        rep = quotas.select(con, settings)
    assert any("json_task" in s and "none" in s for s in rep["shortfalls"])
    assert any("needs at least 5 source documents" in s for s in rep["shortfalls"])


def test_gates_measure_the_unrejected_pool(tmp_path):
    _, store = new_project(tmp_path / "p")
    chunk = add_doc(store, "d")
    good = add_items(store, chunk, 18)
    bad = add_items(store, chunk, 2, prefix="bad")
    set_score(store, good, 0.9)
    set_score(store, bad, 0.0, hard_fail=True)
    settings = _settings(gates={"numeric_fidelity_rate_min": 0.95})
    with store.connect() as con:
        rows = {g["name"]: g for g in gates.evaluate(con, settings)}
    assert rows["numeric_fidelity_rate"]["value"] == 0.9 and not rows["numeric_fidelity_rate"]["passed"]
    assert rows["json_parse_rate"]["passed"] and rows["json_parse_rate"]["n"] == 0
    reviews.decide_many(store, bad, "admin", "reject", reason_code="wrong")
    with store.connect() as con:
        assert gates.failing(gates.evaluate(con, settings)) == []


@pytest.mark.parametrize("data, key", [
    ({"curate": {"gates": {"refusal_rate_max": 1.5}}}, "curate.gates.refusal_rate_max"),
    ({"curate": {"audit_fraction": -0.1}}, "curate.audit_fraction"),
    ({"curate": {"quotas": {"task_min_share": {"qa": 2}}}}, "curate.quotas.task_min_share"),
    ({"export": {"split": [0.5, 0.1]}}, "export.split"),
])
def test_bad_flow_settings_name_the_key(data, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate_settings(data)


def test_curate_pipeline_and_cli_print_gates_and_exit_1_on_failure(tmp_path, monkeypatch):
    project, store = new_project(tmp_path / "p")
    # near-duplicate questions are the point of other tests; here they would only trip the duplicate gate
    project.config_path.write_text(project.config_path.read_text().replace("duplicate_rate_max = 0.2",
                                                                           "duplicate_rate_max = 1.0"))
    source = "第三条 员工出差住宿费报销上限为每晚500元，交通补贴每天80元，餐费每天120元，报销须在15日内提交。"
    wrong = ["Transport allowance: how much per day? It is 95 yuan.", "餐费标准？每天140元。", "报销期限是几天？30日内。"]
    for d in range(3):
        chunk = add_doc(store, f"doc{d}", source)
        add_items(store, chunk, 3, prefix=f"住宿标准{d}", answer="住宿费报销上限为每晚500元。")
        add_items(store, chunk, 1, prefix=wrong[d], answer=wrong[d])
    summary = curate(store, project.settings)
    assert summary["scored"]["scored"] == 12 and summary["scored"]["hard_fail"] == 3
    assert {g["name"] for g in summary["gates"]} == {"json_parse_rate", "required_fields", "template_hit_rate",
                                                     "numeric_fidelity_rate", "duplicate_rate", "refusal_rate", "mix"}
    assert summary["queue"]["waiting"]["hard_fail"] == 3
    assert reviews.gates(store) == summary["gates"]
    monkeypatch.chdir(project.root)
    runner = CliRunner()
    result = runner.invoke(app, ["curate", "--json"])
    data = json.loads(result.stdout)
    failing = [g["name"] for g in data["gates"] if not g["passed"]]
    assert failing and result.exit_code == 1  # 3 invented figures in 12 items fail numeric fidelity (< 90%)
    assert "numeric_fidelity_rate" in failing and "quality gate(s) failed" in result.stderr
    hard = [i["id"] for i in json.loads(runner.invoke(app, ["items", "--status", "needs_review", "--json"]).stdout)
            ["items"]]
    assert len(hard) == 3
    result = runner.invoke(app, ["decide", "--reject", "--reason", "wrong", "--where", "hard_fail"])
    assert result.exit_code == 0, result.output
    assert {status_of(store, project.settings, i) for i in hard} == {"rejected"}
    result = runner.invoke(app, ["curate"])
    assert result.exit_code == 0, result.output
    assert "numeric_fidelity_rate" in result.stderr and "FAIL" not in result.stderr


def test_items_lists_scores_and_evidence_and_rejects_bad_filters(tmp_path, monkeypatch):
    project, store = new_project(tmp_path / "p")
    chunk = add_doc(store, "doc0", "住宿上限为每晚500元。")
    add_items(store, chunk, 1, prefix="住宿上限", answer="每晚600元。")
    curate(store, project.settings)
    monkeypatch.chdir(project.root)
    runner = CliRunner()
    out = json.loads(runner.invoke(app, ["items", "--where", "numeric_fidelity < 1", "--json"]).stdout)["items"]
    assert len(out) == 1 and out[0]["status"] == "needs_review"
    assert out[0]["scores"]["numeric_fidelity"]["evidence"]["not_in_source"] == ["600元"]
    assert set(out[0]) >= {"id", "external_id", "task", "status", "question", "answer", "overall", "scores"}
    result = runner.invoke(app, ["items", "--where", "no_such_column > 1"])
    assert result.exit_code == 2 and "columns: id" in result.stderr
    result = runner.invoke(app, ["items", "--status", "lost"])
    assert result.exit_code == 2 and "needs_review" in result.stderr


def test_an_item_whose_source_chunk_is_gone_goes_to_review_with_a_clear_reason(tmp_path):
    project, store = new_project(tmp_path / "p")
    assert reviews.gates(store) is None  # before the first curate run
    chunk = add_doc(store, "doc0", "住宿上限为每晚500元。")
    (item,) = add_items(store, chunk, 1, prefix="住宿上限")
    with store.transaction() as con:
        con.execute("DELETE FROM chunks WHERE id = ?", [chunk])
    curate(store, project.settings)
    assert status_of(store, project.settings, item) == "needs_review"
    assert store.scalar("SELECT reason FROM review_queue WHERE item_id = ?", [item]) == "hard_fail"
    view = reviews.item_view(store, item)
    assert view["source_missing"] is True and view["figures"] == []
    evidence = next(s["evidence"] for s in view["scores"] if s["scorer"] == "numeric_fidelity")
    assert "source chunk is gone" in evidence["error"]
