"""Who is asking: bearer token or login cookie to a `User`, role checks, per-request DB scope.

A token arrives as `Authorization: Bearer cg_...` (API clients, OAuth2 password flow at
/auth/token) or as the `citygrid_token` cookie that the /login page sets (the map pages; the
cookie is HttpOnly and SameSite=Strict, so another site cannot send it with a forged POST).
Once the user is known, every transaction of the request's session is tagged with the user for
the audit trigger, and a grid owner's transactions run as the row-level-security role.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, SessionTransaction

from api.deps import SessionDep
from gis.access import auth
from gis.access.auth import User
from gis.platform.errors import AuthenticationError, PermissionDeniedError

TOKEN_COOKIE = "citygrid_token"
STAFF = auth.ROLES
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/auth/token", auto_error=False,
                                     description="bearer token from POST /auth/token")


def _request_tag(request: Request) -> str:
    return f"{request.method} {request.url.path}"


def bind_user(session: Session, user: User | None, *, request: str) -> None:
    """Tag every transaction of `session` with `user`; scope it to their grids if a grid owner."""
    actor = user.username if user else "anonymous"
    role = user.role if user else "public"

    def apply(target: Session | Connection) -> None:
        auth.tag_transaction(target, actor=actor, role=role, request=request)
        if user is not None and user.is_grid_owner:
            auth.scope_transaction(target, user=user)

    def _on_begin(_: Session, __: SessionTransaction, connection: Connection) -> None:
        apply(connection)

    # A session shared by several requests (tests) keeps only the latest request's user.
    previous = session.info.pop("citygrid_on_begin", None)
    if previous is not None:
        event.remove(session, "after_begin", previous)
    event.listen(session, "after_begin", _on_begin)
    session.info["citygrid_on_begin"] = _on_begin

    if session.in_transaction():  # the token lookup already began one
        apply(session)


def request_token(request: Request, bearer: str | None) -> str | None:
    """The request's token: the bearer header's, else the login cookie's."""
    return bearer or request.cookies.get(TOKEN_COOKIE)


def optional_user(request: Request, session: SessionDep,
                  token: Annotated[str | None, Depends(oauth2_scheme)] = None) -> User | None:
    """The signed-in user, or None for an anonymous request; a bad token is a 401."""
    token = request_token(request, token)
    user = auth.user_for_token(session, token) if token else None
    request.state.user = user
    bind_user(session, user, request=_request_tag(request))
    return user


OptionalUserDep = Annotated[User | None, Depends(optional_user)]


def require_roles(*roles: str) -> Callable[..., User]:
    """A dependency that lets through signed-in users with one of `roles` (admin always)."""
    def dependency(request: Request, user: OptionalUserDep) -> User:
        return checked_role(request, user, roles)

    return dependency


def checked_role(request: Request, user: User | None, roles: Iterable[str]) -> User:
    """`user` when signed in with one of `roles` (admin always); else a 401 or 403."""
    allowed = set(roles) | {"admin"}
    if user is None:
        raise AuthenticationError(
            f"{request.method} {request.url.path} needs a signed-in user with role "
            f"{' or '.join(sorted(allowed))}; send Authorization: Bearer <token> "
            f"(POST /auth/token) or sign in at /login")
    if user.role not in allowed:
        raise PermissionDeniedError(
            f"user {user.username!r} has role {user.role!r}; {request.method} "
            f"{request.url.path} needs role {' or '.join(sorted(allowed))}")
    return user


StaffDep = Annotated[User, Depends(require_roles(*STAFF))]
AdminDep = Annotated[User, Depends(require_roles("admin"))]
PlannerDep = Annotated[User, Depends(require_roles("planner"))]
DispatcherDep = Annotated[User, Depends(require_roles("dispatcher"))]
CaseWorkerDep = Annotated[User, Depends(require_roles("dispatcher", "grid_owner"))]
AssetKeeperDep = Annotated[User, Depends(require_roles("dispatcher", "grid_owner"))]
staff_only: Any = Depends(require_roles(*STAFF))
