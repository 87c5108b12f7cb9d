"""The report as files: an Excel workbook and a printable PDF, from the page's ReportData."""

from __future__ import annotations

import io
import math
from typing import Any

import pandas as pd
from openpyxl import Workbook
from openpyxl.styles import Font
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.platypus import Image, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from gis.analysis.labels import COUNT_LABELS, PERIOD_LABELS, RATES, ReportData
from maps.charts import trend_chart

PHOTO_RATES = {"after_photo_rate": "处置后照片率", "verification_on_time_rate": "核查及时率"}
# Adobe's CID font ships inside reportlab: Chinese prints on a machine without CJK font files.
PDF_FONT = "STSong-Light"
RANKING_COLUMNS = {"rank": "名次", "name": "名称", "accepted": "受理数", "due": "应结案数",
                   "closed": "结案数", "closure_rate": "结案率(%)",
                   "closed_on_time": "按期结案数", "on_time_rate": "按期结案率(%)",
                   "open_overdue": "超期未结", "rework_rate": "返工率(%)",
                   "satisfaction_rate": "满意率(%)"}
CATEGORY_COLUMNS = {"name": "类别", "accepted": "受理数", "closed": "结案数",
                    "open_overdue": "超期未结"}
COVER_COLUMNS = {"class_name": "井盖类别", "missing": "丢失", "damaged": "破损",
                 "high": "高风险", "longest_hours": "最长等待(小时)"}
TREND_COLUMNS = {"label": "时段", "accepted": "受理数", "due": "应结案数", "closed": "结案数",
                 "closed_on_time": "按期结案数", "on_time_rate": "按期结案率(%)",
                 "open_overdue": "超期未结"}


def report_title(report: ReportData) -> str:
    """The report's title, as on the page."""
    kind = PERIOD_LABELS.get(report.kind, report.kind)
    return f"{report.city} 数字化城管{kind}（{report.period_label}）"


def summary_rows(report: ReportData) -> list[tuple[str, Any]]:
    """(label, value) of the headline: counts, then rates in percent (None when undefined)."""
    row = report.city_row
    counts = [(label, _number(row.get(key))) for key, label in COUNT_LABELS.items()]
    rates = [(f"{label}(%)", _rate(row.get(key))) for key, (label, _, _) in RATES.items()]
    photos = [(f"{label}(%)", _rate(row.get(key))) for key, label in PHOTO_RATES.items()
              if key in row]
    return counts + rates + photos


def report_xlsx(report: ReportData) -> bytes:
    """The report as an .xlsx workbook: 总体, 各区排名, 各街道排名, 高发类别, 趋势, 井盖隐患."""
    book = Workbook()
    sheet = book.active
    sheet.title = "总体"
    _write(sheet, [report_title(report)], bold=True)
    _write(sheet, [f"生成时间 {report.generated_at}"])
    _write(sheet, ["指标", "数值"], bold=True)
    for label, value in summary_rows(report):
        _write(sheet, [label, value])
    for note in report.notes:
        _write(sheet, [note])
    for title, table, columns in _tables(report):
        ws = book.create_sheet(title)
        _write(ws, list(columns.values()), bold=True)
        for record in table.to_dict("records") if not table.empty else []:
            _write(ws, [_cell(record.get(c), rate=c.endswith("_rate")) for c in columns])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def report_pdf(report: ReportData) -> bytes:
    """The report as an A4 PDF with the same tables and the trend chart."""
    if PDF_FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(PDF_FONT))
    title_style = ParagraphStyle("title", fontName=PDF_FONT, fontSize=15, leading=20)
    head_style = ParagraphStyle("head", fontName=PDF_FONT, fontSize=11, leading=16,
                                spaceBefore=8)
    text_style = ParagraphStyle("text", fontName=PDF_FONT, fontSize=8, leading=11)
    story: list[Any] = [Paragraph(_para(report_title(report)), title_style),
                        Paragraph(_para(f"生成时间 {report.generated_at}"), text_style),
                        Spacer(1, 4 * mm)]
    summary = summary_rows(report)
    pairs = [[a, _shown(b), c, _shown(d)] for (a, b), (c, d)
             in zip(summary[0::2], [*summary[1::2], ("", None)], strict=False)]
    story += [Paragraph("一、总体情况", head_style), _pdf_table(pairs, header=False)]
    png = trend_chart(report.trend, title="案件受理、结案与按期结案率趋势")
    story.append(Image(io.BytesIO(png), width=170 * mm, height=170 * mm * 0.45))
    for number, (title, table, columns) in zip("二三四五六", _tables(report), strict=False):
        story.append(Paragraph(f"{number}、{title}", head_style))
        if table.empty:
            story.append(Paragraph("本期无数据。", text_style))
            continue
        rows = [[_shown(_cell(r.get(c), rate=c.endswith("_rate"))) for c in columns]
                for r in table.to_dict("records")]
        story.append(_pdf_table([list(columns.values()), *rows], header=True))
    for note in report.notes:
        story.append(Paragraph(_para(note), text_style))
    out = io.BytesIO()
    SimpleDocTemplate(out, pagesize=A4, title=report_title(report), leftMargin=15 * mm,
                      rightMargin=15 * mm, topMargin=15 * mm, bottomMargin=15 * mm
                      ).build(story)
    return out.getvalue()


def _tables(report: ReportData) -> list[tuple[str, pd.DataFrame, dict[str, str]]]:
    return [("各区排名", report.districts, RANKING_COLUMNS),
            ("各街道排名", report.streets, RANKING_COLUMNS),
            ("高发类别", report.categories, CATEGORY_COLUMNS),
            ("趋势", report.trend, TREND_COLUMNS),
            ("井盖隐患", report.cover_risks, COVER_COLUMNS)]


def _pdf_table(rows: list[list[Any]], *, header: bool) -> Table:
    table = Table(rows, repeatRows=1 if header else 0, hAlign="LEFT")
    style = [("FONT", (0, 0), (-1, -1), PDF_FONT, 7.5),
             ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#bbbbbb")),
             ("VALIGN", (0, 0), (-1, -1), "MIDDLE")]
    if header:
        style.append(("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eef4f8")))
    table.setStyle(TableStyle(style))
    return table


def _write(sheet: Any, values: list[Any], *, bold: bool = False) -> None:
    sheet.append(values)
    for cell in sheet[sheet.max_row]:
        if isinstance(cell.value, str):
            # openpyxl turns a string starting with "=" into a formula: keep every text a text.
            cell.data_type = "s"
        if bold:
            cell.font = Font(bold=True)


def _cell(value: Any, *, rate: bool) -> Any:
    return _rate(value) if rate else (_number(value) if _is_number(value) else _text(value))


def _number(value: Any) -> int | float:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return 0
    number = float(value)
    return int(number) if number.is_integer() else round(number, 2)


def _rate(value: Any) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return round(float(value), 2)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _text(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _shown(value: Any) -> str:
    if value is None:
        return "—"
    return f"{value:,}" if _is_number(value) else _para(str(value))


def _para(text: str) -> str:
    # reportlab's Paragraph and table cells read a small markup: escape what looks like tags.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
