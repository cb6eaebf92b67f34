"""The funders' report: one self-contained HTML file per language, the tables and the Excel appendix.

    from pipelines.report import ReportContext, build_report, publish_quarter, write_index, quarter_entry

`ReportContext` holds the configuration, codebooks, the quarter, the waves it covers and the analysis
tables (docs/architecture.md); `publish_quarter(reports/<quarter>, ctx)` writes report.html,
report.en.html, tables/*.csv and tables/appendix.xlsx; `write_index(reports, [quarter_entry(ctx), ...])`
writes reports/index.html listing every published quarter.
"""
from pipelines.report.builder import build_report, publish_quarter, quarter_entry, write_index
from pipelines.report.context import TABLE_COLUMNS, ReportContext

__all__ = ["ReportContext", "TABLE_COLUMNS", "build_report", "publish_quarter", "quarter_entry", "write_index"]
