"""Reports: tables (md, csv, tex, html, json), plots and one self-contained HTML page per run."""

from hpsearch.report.compare import compare_runs
from hpsearch.report.report import write_report
from hpsearch.report.tables import FORMATS, parse_formats, read_back, render

__all__ = ["FORMATS", "compare_runs", "parse_formats", "read_back", "render", "write_report"]
