"""The whole pipeline on the demo: published files, row accounting, privacy, truth recovery, reruns."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.run import run

pytestmark = pytest.mark.slow
CHECK = Path(__file__).resolve().parents[2] / "shared" / "checks" / "check_contract.py"


def _latest(root):
    return sorted(p.name for p in (root / "reports").glob("20*Q*"))[-1]


def test_publishes_every_contract_file(run_root):
    quarter = _latest(run_root)
    assert quarter == "2025Q4"
    rep = run_root / "reports" / quarter
    for name in ("report.html", "report.en.html", "tables/estimates.csv", "tables/outcomes.csv",
                 "validation/index.html"):
        assert (rep / name).is_file(), name
    assert list((rep / "tables").glob("*.xlsx"))
    assert (run_root / "reports" / "index.html").is_file()
    assert len(list((run_root / "data_clean").glob("*/*.parquet"))) >= 6
    for wave in (p for p in (run_root / "data_clean").iterdir() if p.is_dir()):
        for name in ("cleaning_log.csv", "exclusions.csv", "manifest.json"):
            assert (wave / name).is_file(), (wave.name, name)
    assert (rep / "tables" / "estimates.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    # the run's reliability table reaches the report (its methods section) and is suppressed like the others
    rel = pd.read_csv(rep / "tables" / "reliability.csv", encoding="utf-8-sig")
    assert "suppressed" in rel.columns and len(rel[rel["wave"] == quarter])
    assert "Internal consistency of each scale this quarter" in (rep / "report.en.html").read_text(encoding="utf-8")


@pytest.mark.skipif(not CHECK.exists(), reason="shared/checks/check_contract.py is not beside the repository")
def test_shared_contract_check_passes(run_root):
    result = subprocess.run([sys.executable, str(CHECK), str(run_root)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rows_read_equal_kept_plus_excluded(run_root):
    for wave_dir in sorted(p for p in (run_root / "data_clean").iterdir() if p.is_dir()):
        manifest = json.loads((wave_dir / "manifest.json").read_text(encoding="utf-8"))
        exclusions = pd.read_csv(wave_dir / "exclusions.csv", encoding="utf-8-sig")
        for instrument, entry in manifest["tables"].items():
            rows = entry["rows"]
            kept = len(pd.read_parquet(wave_dir / f"{instrument}.parquet"))
            excluded = int((exclusions["instrument"] == instrument).sum())
            assert rows["kept"] == kept and rows["excluded"] == excluded
            assert rows["read"] == kept + excluded, (wave_dir.name, instrument)
            assert entry["funnel"][0]["rows"] == rows["read"] and entry["funnel"][-1]["rows"] == kept
            assert sum(f["rows"] for f in entry["funnel"][1:-1]) == excluded
            assert all(len(f["sha256"]) == 64 for f in entry["inputs"])


def _personal_values(root, books):
    """Every name, phone, room and IP in the raw exports, read as text from the personal questions' columns."""
    from pipelines.ingest.tables import read_table

    values = set()
    for path in (root / "data_raw").rglob("*"):
        if not path.is_file():
            continue
        table = read_table(path)
        instrument = path.parent.name
        personal_nums = {q.qnum for q in books[instrument].questions if q.personal} if instrument in books else set()
        prefixes = tuple(f"{n}、" for n in personal_nums)
        for col in table.columns:
            name = str(col)
            if name == "来自IP" or (prefixes and name.startswith(prefixes)) or name in ("签到人姓名", "联系电话"):
                values |= {str(v).split("(")[0].strip() for v in table[col].dropna() if len(str(v).strip()) >= 5}
    return values


def test_no_personal_value_reaches_clean_data_or_reports(run_root, books):
    # a value that is also questionnaire text (the room question's example "3号楼502室") is not personal
    labels = " ".join(q.label_zh for b in books.values() for q in b.questions)
    personal = {v for v in _personal_values(run_root, books) if v not in labels}
    assert len(personal) > 1000
    pattern = re.compile("|".join(re.escape(v) for v in sorted(personal, key=len, reverse=True)))
    for folder in ("data_clean", "reports"):
        for path in (run_root / folder).rglob("*"):
            if not path.is_file():
                continue
            if path.suffix == ".parquet":
                text = pd.read_parquet(path).to_csv()
            elif path.suffix == ".xlsx":
                text = "\n".join(df.to_csv() for df in pd.read_excel(path, sheet_name=None, dtype=str).values())
            else:
                text = path.read_text(encoding="utf-8", errors="ignore")
            found = pattern.search(text)
            assert found is None, f"{path.relative_to(run_root)} holds {found.group(0)!r}"


def test_weighted_estimates_cover_the_truth(run_root):
    truth = pd.DataFrame(json.loads((run_root / "demo_truth.json").read_text(encoding="utf-8"))["estimates"])
    quarter = _latest(run_root)
    est = pd.read_csv(run_root / "reports" / quarter / "tables" / "estimates.csv", encoding="utf-8-sig",
                      dtype={"level": str, "group_var": str, "group": str})
    est = est[est["group_var"].isna() & ~est["suppressed"]]
    est["level"] = est["level"].fillna("")
    merged = est.merge(truth, on=["wave", "instrument", "indicator", "stat", "level"])
    assert len(merged) > 1000
    covered = (merged["ci_low"] <= merged["value"]) & (merged["value"] <= merged["ci_high"])
    assert covered.mean() >= 0.85, covered.mean()


def test_panel_effects_recover_the_truth(run_root):
    truth = pd.DataFrame(json.loads((run_root / "demo_truth.json").read_text(encoding="utf-8"))["effects"])
    out = pd.read_csv(run_root / "reports" / _latest(run_root) / "tables" / "outcomes.csv", encoding="utf-8-sig")
    panel = out[(out["scope"] == "panel") & ~out["suppressed"].astype(bool)]
    merged = panel.merge(truth[truth["scope"] == "panel"], on=["instrument", "indicator", "pre_wave", "post_wave"],
                         suffixes=("", "_true"))
    assert len(merged) > 50
    covered = (merged["diff_ci_low"] <= merged["diff_true"]) & (merged["diff_true"] <= merged["diff_ci_high"])
    assert covered.mean() >= 0.80, covered.mean()
    found = merged[merged["detectable"]]
    assert len(found) > 5
    assert ((found["p_adjusted"] < 0.05) & (np.sign(found["diff"]) == np.sign(found["diff_true"]))).all(), \
        found.loc[found["p_adjusted"] >= 0.05, ["indicator", "post_wave", "diff", "p_adjusted"]]
    null = merged[merged["true_effect_sd"] == 0]
    assert (null["p_adjusted"] < 0.05).mean() <= 0.10


def test_second_run_is_byte_identical(run_root, tmp_path):
    copy = tmp_path / "again"
    shutil.copytree(run_root, copy)
    quarter = _latest(run_root)
    before = {p.relative_to(copy): p.read_bytes() for p in (copy / "reports" / quarter).rglob("*")
              if p.is_file() and p.suffix in (".csv", ".html") and "validation" not in p.parts}
    shutil.rmtree(copy / ".tongxing" / "cache")
    state = run(copy, use_cache=False)
    assert not state.unchanged
    for rel, data in before.items():
        assert (copy / rel).read_bytes() == data, rel


def test_no_change_rerun_reuses_everything(run_root, tmp_path):
    copy = tmp_path / "again"
    shutil.copytree(run_root, copy)
    state = run(copy)
    assert state.unchanged and state.reused == len(state.table_keys) == 21


def test_new_download_recomputes_only_its_wave(run_root, tmp_path):
    copy = tmp_path / "again"
    shutil.copytree(run_root, copy)
    folder = copy / "data_raw" / "2025Q4" / "parent"
    export = sorted(folder.glob("*按文本*"))[0]
    shutil.copy2(export, folder / ("copy_of_" + export.name))  # the same export downloaded twice
    state = run(copy)
    assert not state.unchanged
    assert state.reused == len(state.tables) - 1
    manifest = json.loads((copy / "data_clean" / "2025Q4" / "manifest.json").read_text(encoding="utf-8"))
    before = json.loads((run_root / "data_clean" / "2025Q4" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["tables"]["parent"]["rows"]["kept"] == before["tables"]["parent"]["rows"]["kept"]


def _cli(root, *args):
    env = dict(os.environ, TONGXING_LINKAGE_KEY="test-key-not-secret")
    return subprocess.run([sys.executable, "-m", "pipelines", *args, "--root", str(root)], capture_output=True,
                          text=True, env=env)


def test_garbage_export_exits_2_and_leaves_reports(run_root, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(run_root, root)
    report = root / "reports" / "2025Q4" / "report.html"
    before = report.read_bytes()
    bad = root / "data_raw" / "2025Q4" / "parent" / "new_download.xlsx"
    bad.write_bytes(b"PK\x03\x04 truncated")
    raw_before = {p: p.read_bytes() for p in (root / "data_raw").rglob("*") if p.is_file()}
    result = _cli(root, "run")
    assert result.returncode == 2
    assert result.stderr.startswith("error: data_raw/2025Q4/parent/new_download.xlsx: ")
    assert "Traceback" not in result.stderr
    assert report.read_bytes() == before
    assert {p: p.read_bytes() for p in (root / "data_raw").rglob("*") if p.is_file()} == raw_before


def test_critical_validation_failure_exits_1_and_publishes_nothing(run_root, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(run_root, root)
    reports_before = {p: p.read_bytes() for p in (root / "reports").rglob("*") if p.is_file()}
    clean_before = {p: p.read_bytes() for p in (root / "data_clean").rglob("*") if p.is_file()}
    for wave in ("2024Q4", "2025Q1", "2025Q2", "2025Q3"):  # fewer waves: the failure is the same, and faster
        shutil.rmtree(root / "data_raw" / wave)
    first = pd.read_parquet(root / "data_clean" / "2025Q4" / "parent.parquet")["response_id"].iloc[0]
    # a decision that writes an impossible code: the clean table then breaks a critical expectation
    (root / "config" / "decisions.csv").write_text(
        "response_id,action,column,value,reason\n" f"{first},set,hukou,7,录入错误的示例\n", encoding="utf-8")
    result = _cli(root, "run")
    assert result.returncode == 1, result.stderr
    assert "hukou" in result.stderr
    assert {p: p.read_bytes() for p in (root / "reports").rglob("*") if p.is_file()} == reports_before
    assert {p: p.read_bytes() for p in (root / "data_clean").rglob("*") if p.is_file()} == clean_before
