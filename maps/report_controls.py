"""The report page toolbar: period picker, Excel and PDF downloads, print (zh-CN)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from urllib.parse import urlencode

from gis.analysis.labels import PERIOD_LABELS
from maps.escaping import escape

TOOLBAR_CSS = """
.cg-toolbar{display:flex;flex-wrap:wrap;gap:.5rem;align-items:center;margin:.5rem 0 1rem;
  padding:.5rem;border:1px solid #ddd;border-radius:6px;background:#f7fafc}
.cg-toolbar select,.cg-toolbar input,.cg-toolbar button,.cg-toolbar a{min-height:44px;
  font-size:1rem;padding:0 .6rem;border:1px solid #bbb;border-radius:4px;background:#fff;
  color:#222;text-decoration:none;display:inline-flex;align-items:center}
.cg-toolbar button{background:#2b8cbe;color:#fff;border-color:#2b8cbe}
@media print{.cg-toolbar{display:none}}
"""


@dataclass(frozen=True)
class ReportControls:
    """Where the report page is: its period kind, a day in it and the grid-code scope."""

    kind: str
    day: dt.date
    scope: str | None = None

    def query(self) -> str:
        """The query string that reproduces this report (day and scope)."""
        params = {"day": self.day.isoformat()}
        if self.scope:
            params["scope"] = self.scope
        return urlencode(params)


def report_toolbar(controls: ReportControls) -> str:
    """A GET form choosing the period and day, and links to the same report as XLSX and PDF."""
    options = "".join(
        f'<option value="{kind}"{" selected" if kind == controls.kind else ""}>{label}</option>'
        for kind, label in PERIOD_LABELS.items())
    scope = escape(controls.scope or "")
    base = f"/reports/{escape(controls.kind)}"
    query = escape(controls.query())
    # The form submits to /reports/<kind>: the period select names the path, so a tiny
    # inline handler moves it there (the page works without it: the default kind stays).
    return f"""<form class="cg-toolbar" method="get" action="{base}"
 onsubmit="this.action='/reports/'+this.elements.kind.value">
<label>报表 <select name="kind" aria-label="报表周期">{options}</select></label>
<label>日期 <input type="date" lang="zh-CN" name="day" value="{controls.day.isoformat()}"
 required></label>
<label>范围 <input name="scope" value="{scope}" placeholder="网格编码前缀（可空）" maxlength="32"
 pattern="[0-9A-Za-z]*"></label>
<button type="submit">查看</button>
<a href="{base}/report.xlsx?{query}" download>下载 Excel</a>
<a href="{base}/report.pdf?{query}" download>下载 PDF</a>
<button type="button" onclick="window.print()">打印</button>
</form>"""
