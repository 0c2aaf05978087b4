"""Rendering: figures (PNG) and tables from the results the experiments return, and the
self-contained HTML report. Nothing here computes an experiment."""

from cnninv.report.html import build_report, render_experiment
from cnninv.report.sections import SECTIONS, Section, Table

__all__ = ["SECTIONS", "Section", "Table", "build_report", "render_experiment"]
