"""Rendering: figures (PNG) and tables from the results the experiments return, and the
self-contained HTML report. Nothing here computes an experiment."""

from cnninv.report.base import Section, Table
from cnninv.report.html import build_report, render_experiment
from cnninv.report.sections import SECTIONS

__all__ = ["SECTIONS", "Section", "Table", "build_report", "render_experiment"]
