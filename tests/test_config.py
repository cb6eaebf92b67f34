"""Loading config/project.toml: the bundled configuration is valid, and each mistake names its key."""
import re
import shutil

import pytest

from pipelines.config import fold_name, load_config
from pipelines.errors import ConfigError


def test_bundled_config_describes_jinshang(config):
    assert config.project["community_zh"] == "金尚社区"
    assert len(config.compounds) == 8
    assert [w.id for w in config.waves] == ["2024-needs", "2024Q4", "2025Q1", "2025Q2", "2025Q3", "2025Q4"]
    assert {line.id for line in config.service_lines} == {
        "growth_space", "family_education", "mental_health", "rights", "participation"}
    assert config.thresholds.min_cell == 5


def test_children_margins_come_from_project_figures(config):
    # research/indicators.md: 324 aged 0–3, about 540 aged 3–6, about 1,900 aged 6–18 → 2,764 children
    assert config.project["children"] == 324 + 540 + 1900
    for pop in config.populations.values():
        for margin in pop.margins.values():
            assert sum(margin.values()) == pytest.approx(pop.total)
    assert all(c.estimate for c in config.compounds), "per-compound figures are estimates the evaluator corrects"


@pytest.mark.parametrize("typed, expected", [
    ("中福城", "zhongfucheng"), ("中福城小区", "zhongfucheng"), ("中福城 ", "zhongfucheng"),
    ("中福城\u3000", "zhongfucheng"), ("金鸿", "jinhong"), ("ＹＵＬＵ", None), ("玉鹭苑", "yulu"),
    ("金上花园", None), ("", None),
])
def test_compound_spellings(config, typed, expected):
    assert config.compound_for(typed) == expected


def test_fold_name_handles_full_width_and_spaces():
    assert fold_name(" 中福城\u3000") == "中福城"
    assert fold_name("ＡＢＣ") == "ABC"


def _broken(tmp_path, repo_root, old, new):
    shutil.copytree(repo_root / "config", tmp_path / "config")
    path = tmp_path / "config" / "project.toml"
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize("old, new, key", [
    ('"12-14" = 475\n"15-17" = 475', '"12-14" = 475\n"15-17" = 470', "populations.children_8_17.margins.age_band"),
    ("jinshang = 275", "jinshang = 275\nnowhere = 3", "populations.children_8_17.margins.compound"),
    ("min_cell = 5", "min_cell = 0", "thresholds.min_cell"),
    ('id = "2025Q4"\nkind = "quarterly"\nstart = 2025-10-01\nend = 2025-10-31',
     'id = "2025Q4"\nkind = "quarterly"\nstart = 2025-10-01\nend = 2025-12-31', "waves[5]"),
    ('kind = "baseline"', 'kind = "base"', "waves[0].kind"),
    ('identifier = "phone"', 'identifier = "email"', "linkage.identifier"),
    ('aliases = ["中孚", "中孚小区", "中浮花园"]', 'aliases = ["中孚", "中福城"]', "compounds[3].aliases"),
    ("min_cell = 5", 'min_cell = "five"', "thresholds.min_cell"),
])
def test_config_errors_name_the_key(tmp_path, repo_root, old, new, key):
    root = _broken(tmp_path, repo_root, old, new)
    with pytest.raises(ConfigError) as info:
        load_config(root)
    message = info.value.format(root)
    assert message.startswith("error: config/project.toml: ")
    assert key in message


def test_missing_config_says_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match=re.escape("tongxing demo")):
        load_config(tmp_path)


def test_invalid_toml_is_reported(tmp_path, repo_root):
    root = _broken(tmp_path, repo_root, "[thresholds]", "[thresholds")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(root)
