"""Eval reports: JSON for machines, JUnit XML for CI systems, HTML for people.

Every report is built from a run row (or a :class:`~keel.evals.compare.Comparison`) and
from results read a page at a time; lists are capped (:data:`MAX_HTML_CASES` cases in an
HTML table, :data:`MAX_JUNIT_CASES` test cases per JUnit suite, non-passing cases first),
so report size and memory stay bounded whatever the dataset size. The JSON report of a run
lists every result and is written to its file as it is read.

HTML reports are single self-contained files (inline CSS, no scripts, no external assets),
rendered by jinja2 with autoescaping from the templates in ``keel/evals/templates``.

table.py holds the bounded case table every format lists from; json_report.py,
junit_report.py and html_report.py render one format each; files.py writes the reports of
stored runs and comparisons.
"""

from keel.evals.cases import cases_from_rows
from keel.evals.report.files import run_html, write_comparison_report, write_run_report
from keel.evals.report.html_report import render_comparison_html, render_run_html
from keel.evals.report.json_report import comparison_json, result_json, run_report_json
from keel.evals.report.junit_report import junit_xml, run_junit_xml
from keel.evals.report.table import MAX_HTML_CASES, MAX_JUNIT_CASES, CaseTable

__all__ = ["MAX_HTML_CASES", "MAX_JUNIT_CASES", "CaseTable", "cases_from_rows",
           "comparison_json", "junit_xml", "render_comparison_html", "render_run_html",
           "result_json", "run_html", "run_junit_xml", "run_report_json",
           "write_comparison_report", "write_run_report"]
