"""Demo accounts, one per staff role and one dispatcher per district, with random passwords
(never fixed, even in a demo)."""

from __future__ import annotations

import secrets

from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.access import auth

DEMO_ACCOUNTS = (("admin", "admin", "管理员"), ("planner", "planner", "规划员（演示）"),
                 ("dispatcher", "dispatcher", "调度员（演示）"),
                 ("analyst", "analyst", "分析员（演示）"),
                 ("gridowner", "grid_owner", "网格员（演示）"),
                 ("supervisor", "supervisor", "监督员（演示）"))
# One dispatcher per district sub-centre (分中心), limited to its district's cases; the plain
# "dispatcher" above is the city centre's and sees the whole city.
DISTRICT_DISPATCHERS = (("dispatcher-lixia", "370102", "历下区分中心调度员（演示）"),
                        ("dispatcher-shizhong", "370103", "市中区分中心调度员（演示）"),
                        ("dispatcher-tianqiao", "370105", "天桥区分中心调度员（演示）"))


def demo_grid_owner(session: Session) -> str | None:
    """The owner name holding the most grids today: the demo grid-owner account acts for it."""
    return session.execute(text("""
        SELECT owner_name FROM grid_owners
        WHERE valid_from <= current_date AND (valid_to IS NULL OR valid_to > current_date)
        GROUP BY owner_name ORDER BY count(*) DESC, owner_name LIMIT 1""")).scalar()


def ensure_demo_users(session: Session) -> list[tuple[str, str, str]]:
    """Create the demo accounts that are missing; returns (username, role, password) made."""
    made = []
    owner = demo_grid_owner(session)
    for username, role, display in DEMO_ACCOUNTS:
        exists = session.execute(text("SELECT 1 FROM users WHERE username = :u"),
                                 {"u": username}).first()
        if exists or (role == "grid_owner" and owner is None):
            continue
        password = secrets.token_urlsafe(9)
        auth.create_user(session, username=username, password=password, role=role,
                         display_name=display, owner_name=owner if role == "grid_owner" else None)
        made.append((username, role, password))
    loaded = set(session.execute(text("SELECT code FROM districts")).scalars())
    for username, district, display in DISTRICT_DISPATCHERS:
        exists = session.execute(text("SELECT 1 FROM users WHERE username = :u"),
                                 {"u": username}).first()
        if exists or district not in loaded:
            continue
        password = secrets.token_urlsafe(9)
        auth.create_user(session, username=username, password=password, role="dispatcher",
                         display_name=display, district_code=district)
        made.append((username, "dispatcher", password))
    return made
