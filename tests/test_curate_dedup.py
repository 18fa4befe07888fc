"""Exact and near duplicates, in Chinese and English, point to the best-scoring member; nothing is deleted."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from stillroom.curate.dedup import candidate_pairs, find_duplicates, signatures, similarity
from stillroom.curate.scoring import score_items
from stillroom.settings import Settings
from test_curate_scoring_helpers import SOURCE_ZH, add_chunk, add_item, new_project


@pytest.fixture
def store(tmp_path):
    return new_project(tmp_path / "p")[1]


def dup_rows(store) -> dict[tuple[str, str], dict]:
    rows = store.query_dicts("SELECT * FROM duplicates")
    return {(r["item_id"], r["kind"]): r for r in rows}


def test_exact_and_near_duplicates_point_to_the_best_scoring_item(store):
    chunk = add_chunk(store, SOURCE_ZH)
    q = "员工出差住宿费每晚的报销上限是多少？全年累计的上限又是多少？"
    a = "根据第三条，员工出差住宿费报销上限为每晚500元，全年累计不超过3万元，超出部分需个人承担。"
    best = add_item(store, q, a, chunk)
    same = add_item(store, q + " ", a.replace("，", ","), chunk, salt="copy")  # differs only in spaces/punctuation
    near = add_item(store, q, a.replace("超出部分需个人承担", "超出的部分需由个人承担"), chunk)
    worse_near = add_item(store, q, a.replace("3万元", "4万元").replace("超出部分", "多出部分"), chunk)
    other = add_item(store, "逾期提交报销会怎样？", "逾期提交的扣减5%。", chunk)
    score_items(store, Settings())
    before = store.scalar("SELECT count(*) FROM items")
    summary = find_duplicates(store, Settings())
    assert store.scalar("SELECT count(*) FROM items") == before  # nothing deleted

    rows = dup_rows(store)
    assert summary["exact"] == {"items": 2, "groups": 1}
    exact_rep = rows[(best, "exact")]["representative_id"]
    assert rows[(same, "exact")]["representative_id"] == exact_rep and exact_rep in (best, same)
    near_group = {item for (item, kind) in rows if kind == "near"}
    assert near_group == {exact_rep, near, worse_near}
    # worse_near has a figure not in the source (overall 0), so it is never the representative
    assert {rows[(i, "near")]["representative_id"] for i in near_group} == {exact_rep}
    assert all(r["similarity"] >= 0.7 for r in rows.values())
    assert (other, "exact") not in rows and (other, "near") not in rows


def test_rerun_rebuilds_the_table(store):
    chunk = add_chunk(store, SOURCE_ZH)
    add_item(store, "住宿费上限是多少？", "每晚500元。", chunk)
    add_item(store, "住宿费上限是多少？", "每晚500元！", chunk)
    find_duplicates(store, Settings())
    find_duplicates(store, Settings())
    assert store.scalar("SELECT count(*) FROM duplicates WHERE kind = 'exact'") == 2


def test_near_duplicate_recall_on_planted_edits():
    rng = np.random.default_rng(7)
    alphabet = np.array(list("的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处队南给色光门即保治北造百规热领七海口东导器压志世金增争济阶油思术极交受联什认六共权收证改清己美再采转更单风切打白教速花带安场身车例真务具万每目至达走积示议声报斗完类八离华名确才科张信马节话米整空元况今集温传土许步群广石记需段研界拉林律叫且究观越织装影算低持音众书布复容儿须际商非验连断深难近矿千周委素技备半办青省列习响约支般史感劳便团往酸历市克何除消构府称太准精值号率族维划选标写存候毛亲快效斯院查江型眼王按格养易置派层片始却专状育厂京识适属圆包火住调满县局照参红细引听该铁价严"))
    texts, planted = [], []
    for i in range(400):
        t = "".join(rng.choice(alphabet, 120))
        texts.append(t)
        if i % 4 == 0:  # a near duplicate: three characters changed
            chars = list(t)
            for p in rng.choice(len(chars), 3, replace=False):
                chars[p] = rng.choice(alphabet)
            texts.append("".join(chars))
            planted.append((len(texts) - 2, len(texts) - 1))
    cfg = Settings().curate
    sig, has = signatures(np.array(texts, dtype=object), cfg.dedup_shingle_chars, cfg.dedup_num_perm)
    a, b = candidate_pairs(sig, 4)
    sim = similarity(sig, a, b, step=7)  # several slices
    found = {(int(x), int(y)) for x, y, s in zip(a, b, sim) if s >= cfg.dedup_near_threshold}
    recall = sum(p in found or p[::-1] in found for p in planted) / len(planted)
    false = len(found - set(planted) - {p[::-1] for p in planted})
    assert recall >= 0.95 and false == 0, (recall, false)


def test_signatures_are_stable_across_inputs_and_signature_lengths():
    # Golden values from the first (gather-based) implementation: a faster rewrite must not move a
    # single bin, or a re-run would regroup the store's near duplicates.
    texts = ["员工出差住宿费每晚的报销上限是多少", "ab", "the quick brown fox"]
    sig, has = signatures(np.array(texts, dtype=object), 3, 48)  # 48: not a power of two
    assert sig[0, :6].tolist() == [1300459886, 4024105917, 1911390732, 577262954, 3298872091, 1519891114]
    assert sig[2, :6].tolist() == [1060976237, 2701807580, 1171014105, 3885353738, 2040705723, 279914725]
    assert has.tolist() == [True, False, True]  # "ab" is shorter than a shingle
    for kind in (pa.string(), pa.large_string()):  # Arrow input, split over chunks, gives the same
        chunked = pa.chunked_array([pa.array(texts[:2], kind), pa.array(texts[2:], kind)])
        assert np.array_equal(signatures(chunked, 3, 48)[0], sig)
