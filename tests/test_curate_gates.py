"""The shape gates measure the items that carry the shape, whatever task made them."""

from __future__ import annotations

from stillroom.curate import gates
from stillroom.settings import validate_settings
from tests.test_curate_flow_helpers import add_doc, add_items, new_project, set_score

SCHEMA = {"type": "object", "properties": {"filter_type": {"enum": ["bandpass", "bandstop"]}}}
SECTIONS = ["### 结论", "### 推导", "### 检查"]
FORMAT_FAIL = {"format": (0.0, True)}
FORMAT_OK = {"format": (1.0, False)}


def test_json_and_template_gates_count_every_task_that_carries_the_shape(tmp_path):
    _, store = new_project(tmp_path / "p")
    chunk = add_doc(store, "d")
    dialog = add_items(store, chunk, 3, task="json_dialog", prefix="dlg", meta={"json_schema": SCHEMA})
    json_task = add_items(store, chunk, 1, task="json_task", prefix="jt", meta={"json_schema": SCHEMA})
    worked = add_items(store, chunk, 3, task="worked_problem", prefix="wp",
                       meta={"template": SECTIONS, "key_points": ["E = q/(4πε0 r²)"]})
    refusals = add_items(store, chunk, 2, task="template", prefix="out of scope", meta={"refusal": True})
    plain = add_items(store, chunk, 4, prefix="qa")
    set_score(store, dialog[:1] + worked[:1], 0.9, extra=FORMAT_FAIL)
    set_score(store, dialog[1:] + json_task + worked[1:] + refusals + plain, 0.9, extra=FORMAT_OK)
    with store.connect() as con:
        rows = {g["name"]: g for g in gates.evaluate(con, validate_settings({}))}
    assert (rows["json_parse_rate"]["n"], rows["json_parse_rate"]["value"]) == (4, 0.75)
    assert not rows["json_parse_rate"]["passed"] and "3/4 items" in rows["json_parse_rate"]["detail"]
    # refusals carry no template, so they are neither hits nor misses
    assert (rows["template_hit_rate"]["n"], rows["template_hit_rate"]["value"]) == (3, 0.6667)
    assert not rows["template_hit_rate"]["passed"]
