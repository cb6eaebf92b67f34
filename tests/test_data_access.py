"""The analyst data product: DuckDB views agree with the Parquet files; the dictionary covers every column."""
import pandas as pd
import pytest

from pipelines import data

pytestmark = pytest.mark.slow


def test_duckdb_views_count_what_parquet_holds(run_root):
    con = data.connect(run_root)
    for instrument in ("parent", "child", "community"):
        files = sorted((run_root / "data_clean").glob(f"*/{instrument}.parquet"))
        expected = sum(len(pd.read_parquet(f)) for f in files)
        assert con.execute(f"SELECT count(*) FROM {instrument}").fetchone()[0] == expected
        by_wave = dict(con.execute(f"SELECT wave, count(*) FROM {instrument} GROUP BY wave").fetchall())
        assert by_wave == {f.parent.name: len(pd.read_parquet(f)) for f in files}
    long = con.execute("SELECT count(DISTINCT response_id) FROM answers WHERE instrument = 'child'").fetchone()[0]
    assert long == sum(len(pd.read_parquet(f)) for f in (run_root / "data_clean").glob("*/child.parquet"))
    excluded = con.execute("SELECT count(*) FROM exclusions").fetchone()[0]
    assert excluded == sum(len(pd.read_csv(f, encoding="utf-8-sig")) for f in (run_root / "data_clean").glob("*/exclusions.csv"))


def test_dictionary_covers_every_clean_column(run_root):
    dictionary = pd.read_csv(run_root / "data_clean" / "data_dictionary.csv", encoding="utf-8-sig")
    for path in (run_root / "data_clean").glob("*/*.parquet"):
        if path.stem.endswith(".missing"):
            continue
        described = set(dictionary.loc[dictionary["instrument"] == path.stem, "column"])
        missing = set(pd.read_parquet(path).columns) - described
        assert not missing, (path, sorted(missing)[:5])
    assert dictionary["label_zh"].notna().all() and dictionary["label_en"].notna().all()
    assert (dictionary["column"] != dictionary["label_zh"]).mean() > 0.95, "columns have real labels"


def test_design_from_files_matches_report(run_root):
    est = pd.read_csv(run_root / "reports" / "2025Q4" / "tables" / "estimates.csv", encoding="utf-8-sig",
                      dtype={"level": str, "group_var": str})
    row = est[(est.wave == "2025Q4") & (est.instrument == "child") & (est.indicator == "who5_score")
              & est.group_var.isna()].iloc[0]
    from pipelines import survey
    result = survey.mean(data.design("2025Q4", "child", run_root), "who5_score")
    assert result["estimate"] == pytest.approx(row["estimate"], rel=1e-9)
    assert result["se"] == pytest.approx(row["se"], rel=1e-9)
