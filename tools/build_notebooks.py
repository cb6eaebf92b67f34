"""Writes the analysts' notebooks in notebooks/ (without outputs) from the cells below.

Keeping their source here makes them reviewable as Python; `make test` executes every notebook against a
demo root, so a notebook that stops matching the pipeline's API fails the build instead of rotting.
Run: .venv/bin/python tools/build_notebooks.py
"""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

OUT = Path(__file__).resolve().parent.parent / "notebooks"

SETUP = """\
import os
from pathlib import Path

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from pipelines import data, stats, survey

ROOT = data.project_root()          # $TONGXING_ROOT, or this repository
WAVES = data.waves(ROOT)
print(ROOT, WAVES)"""

NOTEBOOKS = {
    "01-data-quality": [
        ("md", """# 01 · Data quality: what came in, what was dropped, and why

Every raw row is either kept or excluded with a rule. This notebook reads the pipeline's own records —
`exclusions.csv`, `cleaning_log.csv` and each wave's `manifest.json` — through the DuckDB views of
`pipelines.data.connect`, so the numbers are the report's numbers. Set `TONGXING_ROOT` to analyse
another project root."""),
        ("code", SETUP),
        ("md", "## The funnel: rows read → excluded by each rule → kept"),
        ("code", """\
import json
rows = []
for wave in WAVES:
    manifest = json.loads((ROOT / "data_clean" / wave / "manifest.json").read_text(encoding="utf-8"))
    for instrument, entry in manifest["tables"].items():
        for step in entry["funnel"]:
            rows.append({"wave": wave, "instrument": instrument, **step})
funnel = pd.DataFrame(rows)
funnel.pivot_table(index=["wave", "instrument"], columns="rule", values="rows", aggfunc="sum").fillna(0).astype(int)"""),
        ("code", """\
excluded = funnel[~funnel["rule"].isin(["read", "kept"])]
px.bar(excluded, x="wave", y="rows", color="rule", facet_col="instrument", title="Rows excluded, by rule")"""),
        ("md", "## Exclusions and changes, queried with SQL across every wave"),
        ("code", """\
con = data.connect(ROOT)
con.sql(\"\"\"SELECT instrument, rule, count(*) AS n FROM exclusions
          GROUP BY ALL ORDER BY instrument, n DESC\"\"\").df()"""),
        ("code", """\
con.sql(\"\"\"SELECT rule, count(*) AS changes, count(DISTINCT response_id) AS responses
          FROM cleaning_log GROUP BY rule ORDER BY changes DESC\"\"\").df()"""),
        ("md", """Take it further: filter `exclusions` by `rule = 'compound_unresolved'` to see spellings worth adding
to `config/project.toml`, or write a line in `config/decisions.csv` to overrule a rule for one response."""),
    ],
    "02-needs-assessment": [
        ("md", """# 02 · Needs assessment: what families need, and whether it differs between groups

Weighted estimates use the same design as the report (`pipelines.data.design`): strata by compound,
weights raked to the community's population. Missing answers are a domain, as in R's `subset()`."""),
        ("code", SETUP),
        ("code", """\
baseline = WAVES[0]
parent = data.load(baseline, "parent", ROOT)
design = data.design(baseline, "parent", ROOT)
needs = [c for c in parent.columns if c.startswith("needs__")]
print(len(parent), "parents;", len(needs), "need options")"""),
        ("code", """\
from pipelines.codebook import load_codebooks
from pipelines.config import load_config
books = load_codebooks(load_config(ROOT).questionnaire_dir)
labels = {f"needs__{c.code}": c.label_zh for c in books["parent"]["needs"].choices}
table = pd.DataFrame([{"need": labels[c], **survey.proportion(design, c, 1)} for c in needs])
table = table.sort_values("estimate", ascending=False)
table[["need", "estimate", "ci_low", "ci_high", "n", "deff"]].round(3)"""),
        ("code", """\
fig = go.Figure(go.Bar(x=table["estimate"], y=table["need"], orientation="h",
                       error_x=dict(type="data", symmetric=False, array=table["ci_high"] - table["estimate"],
                                    arrayminus=table["estimate"] - table["ci_low"])))
fig.update_layout(title="Share of parents naming each need (weighted, 95% CI)", yaxis=dict(autorange="reversed"))
fig"""),
        ("md", "## Do floating-population families need different things?"),
        ("code", """\
rows = []
for column in needs:
    for group, result in survey.by(design, column, "hukou_group", stat="proportion", level=1).items():
        rows.append({"need": labels[column], "hukou": group, **result})
by_hukou = pd.DataFrame(rows)
px.scatter(by_hukou, x="estimate", y="need", color="hukou", error_x=by_hukou["ci_high"] - by_hukou["estimate"],
           error_x_minus=by_hukou["estimate"] - by_hukou["ci_low"], title="Needs by household registration")"""),
        ("md", """Overlapping intervals are not a test. For a formal comparison use the published
`reports/<quarter>/tables/needs_priority.csv`, or compare two groups' estimates with their SEs."""),
    ],
    "03-outcomes": [
        ("md", """# 03 · Outcomes: did the services change anything?

`outcomes.csv` holds every pre/post comparison the report makes: panel (the same respondents linked by
`respondent_key`), cross-section (new respondents) and group activities, each with its test, effect size
and Holm-adjusted p-value (`p_adjusted`; Benjamini–Hochberg across all tests in `p_bh`)."""),
        ("code", SETUP),
        ("code", """\
quarter = sorted(p.name for p in (ROOT / "reports").glob("20*Q*"))[-1]
outcomes = pd.read_csv(ROOT / "reports" / quarter / "tables" / "outcomes.csv", encoding="utf-8-sig")
panel = outcomes[(outcomes["scope"] == "panel") & (outcomes["pre_wave"] == WAVES[0]) & (outcomes["post_wave"] == WAVES[-1])]
panel[["instrument", "indicator", "n_pairs", "mean_pre", "mean_post", "diff", "test", "p_adjusted",
       "effect_size_name", "effect_size"]].round(3)"""),
        ("code", """\
shown = panel.dropna(subset=["effect_size"]).sort_values("effect_size")
fig = go.Figure(go.Scatter(x=shown["effect_size"], y=shown["instrument"] + " · " + shown["indicator"], mode="markers",
                           error_x=dict(type="data", symmetric=False, array=shown["es_ci_high"] - shown["effect_size"],
                                        arrayminus=shown["effect_size"] - shown["es_ci_low"])))
fig.add_vline(x=0, line_dash="dot")
fig.update_layout(title=f"Effect sizes, {WAVES[0]} → {WAVES[-1]} (panel)", height=600)
fig"""),
        ("md", "## Re-run one comparison yourself with the same API the pipeline uses"),
        ("code", """\
pre = data.load(WAVES[0], "child", ROOT)[["respondent_key", "who5_score"]]
post = data.load(WAVES[-1], "child", ROOT)[["respondent_key", "who5_score"]]
pairs = pre[pre.respondent_key != ""].merge(post, on="respondent_key", suffixes=("_pre", "_post"))
result = stats.paired(pairs["who5_score_pre"], pairs["who5_score_post"], level="interval")
{k: result[k] for k in ("n_pairs", "diff", "diff_ci_low", "diff_ci_high", "test", "p_value", "effect_size")}"""),
        ("md", """Is the change concentrated in one compound? Filter `pairs` by the baseline `compound` and call
`stats.paired` per group — and remember that every extra test needs adjusting (`stats.adjust(p, "holm")`)."""),
    ],
    "04-quarterly-trends": [
        ("md", """# 04 · Quarterly trends

Weighted means per wave with their design-based CIs, and a mixed model (wave as fixed effect, respondent
random intercept) that uses every response, linked or not. A model that did not converge says so."""),
        ("code", SETUP),
        ("code", """\
rows = []
for wave in WAVES:
    path = ROOT / "data_clean" / wave / "child.parquet"
    if path.exists():
        rows.append({"wave": wave, **survey.mean(data.design(wave, "child", ROOT), "who5_score")})
trend = pd.DataFrame(rows)
trend[["wave", "estimate", "ci_low", "ci_high", "n"]].round(2)"""),
        ("code", """\
fig = go.Figure([
    go.Scatter(x=trend["wave"], y=trend["ci_high"], line=dict(width=0), showlegend=False),
    go.Scatter(x=trend["wave"], y=trend["ci_low"], fill="tonexty", line=dict(width=0), name="95% CI"),
    go.Scatter(x=trend["wave"], y=trend["estimate"], mode="lines+markers", name="WHO-5 (0–100)"),
])
fig.update_layout(title="Children's wellbeing by wave (weighted)")
fig"""),
        ("code", """\
from pipelines.trends import mixed_trend
model = mixed_trend(data.load_all("child", ROOT), "who5_score")
print("converged:", model["converged"])
model["table"].round(3)"""),
        ("md", """`mixed_trend` returns the wave effects against the baseline with CIs; `converged` is False when the
optimiser did not converge, and such a model must not be reported."""),
    ],
    "05-new-question-template": [
        ("md", """# 05 · Template: a new question

Copy this notebook, state the question in one sentence, and answer it with the `pipelines` API
(`data.load`, `data.design`, `survey.mean` / `survey.proportion` / `survey.by`, `stats.paired` /
`stats.independent`), never with hand-written formulas, so the answer agrees with the report."""),
        ("code", SETUP),
        ("md", "**Question:** what share of children in each compound know where to get help when they feel low?"),
        ("code", """\
wave = WAVES[-1]
frame = data.load(wave, "child", ROOT)
design = data.design(wave, "child", ROOT)
column = "who5_low"   # replace with the column that answers your question (see data_clean/data_dictionary.csv)
pd.DataFrame(survey.by(design, column, "compound", stat="proportion", level=1)).T.round(3)"""),
    ],
}


def build() -> list[Path]:
    OUT.mkdir(exist_ok=True)
    written = []
    for name, cells in NOTEBOOKS.items():
        nb = new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb.cells = [new_markdown_cell(src) if kind == "md" else new_code_cell(src) for kind, src in cells]
        for i, cell in enumerate(nb.cells):
            cell["id"] = f"{name[:2]}-{i:02d}"
        path = OUT / f"{name}.ipynb"
        nbformat.write(nb, path)
        written.append(path)
    return written


if __name__ == "__main__":
    for path in build():
        print(path)
