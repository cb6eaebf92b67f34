"""The demo: reproducible, realistic, and its exports read back to the population's answers."""
import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from pipelines.demo.answers import answer_wave
from pipelines.demo.build import make_demo
from pipelines.demo.population import build_population, wave_ramp
from pipelines.demo.sampling import add_metadata, draw_samples, plant_messiness

SEED = 20240601


def _digest(root):
    out = {}
    for path in sorted((root / "data_raw").rglob("*")):
        if path.is_file():
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def test_same_seed_gives_identical_files(demo_root, tmp_path):
    again = tmp_path / "again"
    make_demo(again, seed=SEED)
    assert _digest(again) == _digest(demo_root)
    assert (again / "demo_truth.json").read_bytes() == (demo_root / "demo_truth.json").read_bytes()


def test_other_seed_gives_other_answers(config, books):
    book = books["child"]
    a = answer_wave(build_population(config, book, 1), book, config, "2024-needs", 0.0, 1)
    b = answer_wave(build_population(config, book, 2), book, config, "2024-needs", 0.0, 1)
    assert not a["who5_1"].equals(b["who5_1"])


def test_population_matches_the_configured_margins(config, books):
    pop = build_population(config, books["parent"], SEED)
    margins = config.populations["households_with_children"].margins
    assert pop.units["compound"].value_counts().to_dict() == {k: int(v) for k, v in margins["compound"].items()}
    assert pop.units["hukou"].value_counts().to_dict() == {k: int(v) for k, v in margins["hukou"].items()}


def test_sample_is_biased_the_way_weighting_must_correct(config, books):
    """Low-response compounds are under-represented in the raw sample (the reason to weight)."""
    pop = build_population(config, books["child"], SEED)
    samples = draw_samples(pop, list(config.waves), SEED)
    sampled = pop.units.iloc[samples["2024-needs"]]
    share_sample = (sampled["compound"] == "yiyuan").mean()
    share_pop = (pop.units["compound"] == "yiyuan").mean()
    assert share_sample < 0.75 * share_pop
    assert (sampled["band"] == "15-17").mean() < (pop.units["band"] == "15-17").mean()


def test_panel_members_reappear_with_attrition(config, books):
    pop = build_population(config, books["parent"], SEED)
    samples = draw_samples(pop, list(config.waves), SEED)
    base = set(samples["2024-needs"])
    overlaps = [len(base & set(samples[w.id])) for w in config.waves[1:]]
    assert all(o > 50 for o in overlaps)
    assert overlaps[-1] < overlaps[0], "attrition: fewer baseline families answer later waves"


def test_truth_file_has_contract_shape(demo_root):
    truth = json.loads((demo_root / "demo_truth.json").read_text(encoding="utf-8"))
    est = truth["estimates"][0]
    assert set(est) == {"wave", "instrument", "indicator", "stat", "level", "value"}
    eff = truth["effects"][0]
    assert {"instrument", "indicator", "scope", "pre_wave", "post_wave", "diff", "detectable"} <= set(eff)
    assert any(e["detectable"] for e in truth["effects"])
    assert any(e["true_effect_sd"] == 0 for e in truth["effects"]), "some indicators have no true effect"


def test_exports_look_like_wjx_downloads(demo_root):
    files = sorted((demo_root / "data_raw").rglob("*"))
    names = [p.name for p in files if p.is_file()]
    assert any("按文本" in n and n.endswith(".xlsx") for n in names)
    assert any("按序号" in n and n.endswith(".csv") for n in names)
    gbk = [p for p in files if p.suffix == ".csv" and "2024Q4" in str(p)]
    assert gbk
    raw = gbk[0].read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    text = raw.decode("gb18030")
    for marker in ("序号", "提交答卷时间", "所用时间", "来自IP", "秒"):
        assert marker in text


def test_messiness_is_planted(demo_root):
    truth = json.loads((demo_root / "demo_truth.json").read_text(encoding="utf-8"))
    total = pd.DataFrame(truth["planted"]).T.sum()
    for kind in ("duplicate", "speeder", "straightliner", "compound_variant", "age_typed", "ineligible_age"):
        assert total[kind] > 0, kind


def test_exports_parse_back_to_the_population_answers(demo_root, config, books):
    """Rebuild the 2024-needs parent sample in memory and compare it with what ingest reads from disk."""
    from pipelines.ingest import ingest_folder

    book = books["parent"]
    wave = config.waves[0]
    pop = build_population(config, book, SEED)
    answers = answer_wave(pop, book, config, wave.id, wave_ramp(config)[wave.id], SEED)
    samples = draw_samples(pop, list(config.waves), SEED)
    expected, _ = plant_messiness(add_metadata(answers.iloc[samples[wave.id]], book, wave, SEED), book, config,
                                  SEED, wave.id)
    got = ingest_folder(demo_root / "data_raw" / wave.id / "parent", book, demo_root).frame
    got = got.set_index("platform_id").loc[expected["platform_id"]]
    assert len(got) == len(expected)
    checked = 0
    for q in book.questions:
        cols = [q.option_column(c) for c in q.codes] if q.type in ("select_multiple", "rank") else [q.name]
        for col in cols:
            a = expected[col].astype("string").fillna("<NA>").str.strip().to_numpy()
            b = got[col].astype("string").fillna("<NA>").str.strip().to_numpy()
            assert (a == b).mean() == 1.0, col
            checked += 1
    assert checked > 50
    np.testing.assert_allclose(got["duration_s"].astype(float), expected["duration_s"].astype(float))
