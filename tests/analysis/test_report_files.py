"""Reports as files and with a period picker: the XLSX and PDF carry the page's numbers."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import text
from sqlalchemy.orm import Session

from api.deps import get_session
from api.main import create_app
from tests.analysis.test_analysis_api import DISTRICT, build_city, insert_rival_district
from tests.support.accounts import headers_for

WEEK = {"day": "2024-05-08", "scope": DISTRICT}


@pytest.fixture
def client(test_settings, session: Session) -> Iterator[TestClient]:
    build_city(session)
    app = create_app(test_settings)
    app.dependency_overrides[get_session] = lambda: session
    with TestClient(app, headers=headers_for(session, "analyst")) as c:
        yield c


def test_report_page_has_period_picker_and_downloads(client: TestClient) -> None:
    html = client.get("/reports/weekly", params=WEEK).text
    toolbar = html.split('<form class="cg-toolbar"')[1].split("</form>")[0]
    assert '<option value="weekly" selected>周报</option>' in toolbar
    assert 'value="2024-05-08"' in toolbar
    assert f"/reports/weekly/report.xlsx?day=2024-05-08&amp;scope={DISTRICT}" in toolbar
    assert "/reports/weekly/report.pdf?" in toolbar and "window.print()" in toolbar
    assert "调度台的“超期”按当前环节" in html  # the overdue definition is stated
    assert '<header class="cg-shell" id="cg-shell"' in html  # the staff app shell


def test_xlsx_has_the_pages_numbers(client: TestClient) -> None:
    r = client.get("/reports/weekly/report.xlsx", params=WEEK)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert 'filename="report-weekly-2024-05-08.xlsx"' in r.headers["content-disposition"]
    book = load_workbook(io.BytesIO(r.content))
    assert book.sheetnames == ["总体", "各区排名", "各街道排名", "高发类别", "趋势", "井盖隐患"]
    summary = {row[0]: row[1] for row in book["总体"].iter_rows(min_row=4, values_only=True)}
    # The same week as the page test: 3 accepted, 3 due, 2 closed, 1 on time.
    assert summary["受理数"] == 3 and summary["应结案数"] == 3 and summary["结案数"] == 2
    assert summary["结案率(%)"] == 66.67 and summary["按期结案率(%)"] == 33.33
    districts = list(book["各区排名"].iter_rows(values_only=True))
    assert districts[0][:3] == ("名次", "名称", "受理数")
    assert districts[1][:5] == (1, "测试区", 3, 3, 2)


def test_xlsx_keeps_formula_like_names_as_text(client: TestClient, session: Session) -> None:
    insert_rival_district(session)
    session.execute(text("UPDATE districts SET name = '=HYPERLINK(\"http://x\")' "
                         "WHERE name = '对照区'"))
    book = load_workbook(io.BytesIO(
        client.get("/reports/weekly/report.xlsx", params={"day": "2024-05-08"}).content))
    cells = [c for row in book["各区排名"].iter_rows() for c in row
             if isinstance(c.value, str) and c.value.startswith("=")]
    assert cells and all(c.data_type == "s" for c in cells)


def test_pdf_is_a_printable_document(client: TestClient) -> None:
    r = client.get("/reports/monthly/report.pdf", params=WEEK)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf"
    assert r.content[:5] == b"%PDF-" and b"STSong-Light" in r.content
    assert r.content.count(b"/Type /Page\n") + r.content.count(b"/Type /Page ") >= 1
    assert client.get("/reports/yearly/report.pdf").status_code == 422


def test_ranking_chart_not_drawn_without_rates(client: TestClient, session: Session) -> None:
    insert_rival_district(session)
    # A day with nothing due anywhere: rates undefined, so no empty chart, a sentence instead.
    html = client.get("/reports/daily", params={"day": "2024-05-12"}).text
    section = html.split("<h2>二、各区排名</h2>")[1].split("<h2>三、")[0]
    assert "<table>" in section  # two districts listed...
    assert "data:image/png;base64," not in section  # ...but no chart of empty bars
    assert "不绘制按期结案率排名图" in section
