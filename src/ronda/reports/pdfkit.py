"""The parts every PDF report shares: page template, styles, tables and charts (reportlab)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any
from xml.sax.saxutils import escape

from reportlab.graphics.charts.barcharts import VerticalBarChart
from reportlab.graphics.charts.piecharts import Pie
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.platypus import Flowable, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

RESULT_COLOURS = {
    "pass": colors.HexColor("#2e7d32"), "partial": colors.HexColor("#f9a825"),
    "fail": colors.HexColor("#c62828"), "not_applicable": colors.HexColor("#9e9e9e"),
}
RESULT_LABELS = {"pass": "Pass", "partial": "Partial", "fail": "Fail", "not_applicable": "N/A"}
RISK_COLOURS = {"critical": colors.HexColor("#8e0000"), "high": colors.HexColor("#c62828"),
                "medium": colors.HexColor("#f9a825"), "low": colors.HexColor("#2e7d32")}
HEADER_BG = colors.HexColor("#263238")
STRIPE = colors.HexColor("#f3f5f7")
PALETTE = [colors.HexColor(c) for c in ("#1565c0", "#2e7d32", "#f9a825", "#c62828", "#6a1b9a", "#00838f",
                                         "#ef6c00", "#5d4037", "#546e7a", "#ad1457")]

_base = getSampleStyleSheet()
STYLES: dict[str, ParagraphStyle] = {
    "title": ParagraphStyle("title", parent=_base["Title"], fontSize=24, leading=30, spaceAfter=12),
    "subtitle": ParagraphStyle("subtitle", parent=_base["Normal"], fontSize=13, leading=18, alignment=TA_CENTER,
                               textColor=colors.HexColor("#37474f")),
    "h1": ParagraphStyle("h1", parent=_base["Heading1"], fontSize=16, leading=20, spaceBefore=6, spaceAfter=8),
    "h2": ParagraphStyle("h2", parent=_base["Heading2"], fontSize=12, leading=15, spaceBefore=8, spaceAfter=4),
    "body": ParagraphStyle("body", parent=_base["Normal"], fontSize=9.5, leading=13),
    "small": ParagraphStyle("small", parent=_base["Normal"], fontSize=7.5, leading=9.5),
    "cell": ParagraphStyle("cell", parent=_base["Normal"], fontSize=7.5, leading=9),
    "head": ParagraphStyle("head", parent=_base["Normal"], fontSize=7.5, leading=9, textColor=colors.white,
                           fontName="Helvetica-Bold"),
    "score": ParagraphStyle("score", parent=_base["Title"], fontSize=40, leading=46),
}


def text(value: Any, style: str = "body") -> Paragraph:
    """A paragraph of untrusted text (names, reasons): escaped, so '<' never reads as markup."""
    return Paragraph(escape("" if value is None else str(value)), STYLES[style])


def markup(value: str, style: str = "body") -> Paragraph:
    """A paragraph of our own markup (bold, colour)."""
    return Paragraph(value, STYLES[style])


def result_cell(result: str) -> Paragraph:
    colour = RESULT_COLOURS.get(result, colors.black).hexval().replace("0x", "#")
    return markup(f'<font color="{colour}"><b>{RESULT_LABELS.get(result, result)}</b></font>', "cell")


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], widths: Sequence[float]) -> Table:
    """A striped table with a repeated header; cells that are not flowables become escaped paragraphs."""
    data: list[list[Any]] = [[text(h, "head") for h in header]]
    for row in rows:
        data.append([_cell(cell, width) for cell, width in zip(row, widths, strict=True)])
    out = Table(data, colWidths=[w * mm for w in widths], repeatRows=1)
    out.setStyle(TableStyle([
        ("FONT", (0, 1), (-1, -1), "Helvetica", 7.5, 9),
        ("BACKGROUND", (0, 0), (-1, 0), HEADER_BG),
        ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, STRIPE]),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("GRID", (0, 0), (-1, -1), 0.25, colors.HexColor("#cfd8dc")),
        ("TOPPADDING", (0, 0), (-1, -1), 2), ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
    ]))
    return out


def _cell(value: Any, width_mm: float) -> Any:
    """Short text as a plain string (cheap to lay out); long text as a paragraph that wraps."""
    if isinstance(value, Flowable):
        return value
    plain = "" if value is None else str(value)
    if "\n" not in plain and stringWidth(plain, "Helvetica", 7.5) < width_mm * mm - 5:
        return plain
    return Paragraph(escape(plain).replace("\n", "<br/>"), STYLES["cell"])


def key_values(pairs: Sequence[tuple[str, Any]], widths: tuple[float, float] = (45, 125)) -> Table:
    data = [[markup(f"<b>{escape(k)}</b>", "cell"), text(v, "cell")] for k, v in pairs]
    out = Table(data, colWidths=[w * mm for w in widths])
    out.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"),
                             ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.HexColor("#cfd8dc"))]))
    return out


def bar_chart(labels: Sequence[str], values: Sequence[float], title: str,
              bar_colours: Sequence[Any] | None = None, width: float = 160, height: float = 70) -> Drawing:
    drawing = Drawing(width * mm, height * mm)
    chart = VerticalBarChart()
    chart.x, chart.y = 12 * mm, 10 * mm
    chart.width, chart.height = (width - 20) * mm, (height - 22) * mm
    chart.data = [list(values) or [0]]
    chart.categoryAxis.categoryNames = list(labels) or [""]
    chart.categoryAxis.labels.fontSize = 7
    chart.valueAxis.valueMin = 0
    chart.valueAxis.labels.fontSize = 7
    top = max(values) if values else 0
    chart.valueAxis.valueMax = max(1, top * 1.15)
    chart.bars.strokeWidth = 0
    for index, colour in enumerate(bar_colours or []):
        chart.bars[(0, index)].fillColor = colour
    chart.barLabelFormat = "%d"
    chart.barLabels.fontSize = 7
    chart.barLabels.nudge = 6
    drawing.add(chart)
    drawing.add(String(width * mm / 2, (height - 6) * mm, title, fontSize=9, textAnchor="middle",
                       fontName="Helvetica-Bold"))
    return drawing


def pie_chart(labels: Sequence[str], values: Sequence[float], title: str, width: float = 160,
              height: float = 70) -> Drawing:
    drawing = Drawing(width * mm, height * mm)
    pie = Pie()
    pie.x, pie.y = 15 * mm, 6 * mm
    pie.width = pie.height = (height - 18) * mm
    pie.data = list(values) or [1]
    pie.labels = [f"{label} ({int(value)})" for label, value in zip(labels, values, strict=True)] or ["none"]
    pie.simpleLabels = 0
    pie.slices.fontSize = 7
    pie.slices.strokeWidth = 0.5
    pie.slices.strokeColor = colors.white
    for index in range(len(pie.data)):
        pie.slices[index].fillColor = PALETTE[index % len(PALETTE)]
    drawing.add(pie)
    drawing.add(String(width * mm / 2, (height - 6) * mm, title, fontSize=9, textAnchor="middle",
                       fontName="Helvetica-Bold"))
    return drawing


def build(story: list[Any], title: str, footer: str) -> bytes:
    """Lay the story out on A4 with a footer (title, page number) on every page after the cover."""
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(buffer, pagesize=A4, leftMargin=18 * mm, rightMargin=18 * mm, topMargin=16 * mm,
                            bottomMargin=16 * mm, title=title, author="Ronda", subject=footer)

    def later_pages(canvas: Any, document: Any) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 7.5)
        canvas.setFillColor(colors.HexColor("#607d8b"))
        canvas.drawString(18 * mm, 9 * mm, footer[:140])
        canvas.drawRightString(A4[0] - 18 * mm, 9 * mm, f"Page {document.page}")
        canvas.restoreState()

    doc.build(story, onFirstPage=lambda c, d: None, onLaterPages=later_pages)
    return buffer.getvalue()


def spacer(height_mm: float) -> Spacer:
    return Spacer(1, height_mm * mm)
