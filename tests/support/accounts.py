"""Staff accounts for tests: a fresh user of a role and the Authorization header of its token."""

from __future__ import annotations

import uuid

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from gis.access import auth
from gis.platform.db import transaction

PASSWORD = "test-password"


def headers_for(target: Engine | Session, role: str, *,
                owner_name: str | None = None,
                district_code: str | None = None) -> dict[str, str]:
    """A new user with `role` (committed for an engine, in the open transaction for a session)."""
    if isinstance(target, Session):
        return {"Authorization": f"Bearer {_token(target, role, owner_name, district_code)}"}
    with transaction(target) as session:
        token = _token(session, role, owner_name, district_code)
    return {"Authorization": f"Bearer {token}"}


def _token(session: Session, role: str, owner_name: str | None,
           district_code: str | None = None) -> str:
    user = auth.create_user(session, username=f"t-{role}-{uuid.uuid4().hex[:8]}",
                            password=PASSWORD, role=role, owner_name=owner_name,
                            district_code=district_code)
    return auth.issue_token(session, user=user)
