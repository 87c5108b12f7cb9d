"""Sign-in (OAuth2 password flow and a zh-CN login page), sign-out, who am I; audit for admins."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.security import OAuth2PasswordRequestForm
from markupsafe import escape
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from api.auth import TOKEN_COOKIE, AdminDep, OptionalUserDep, StaffDep
from api.deps import PagingDep, SessionDep, SettingsDep
from api.params import SaneDatetime
from api.shell import page_paths, role_label
from gis.access import auth
from gis.access import shared_throttle as shared
from gis.access.audit import read_audit, record_sign_in
from gis.access.auth import User
from gis.access.throttle import KeyThrottle, LoginThrottle
from gis.platform.errors import AuthenticationError
from gis.platform.settings import ApiSettings, Settings
from maps.shell import home_for, nav_for

router = APIRouter(tags=["auth"])
logger = logging.getLogger("citygrid.api.auth")
THROTTLED: dict[int | str, dict[str, Any]] = {429: {
    "description": "Too many failed sign-ins for this username or address; wait the seconds "
                   "given in Retry-After",
    "headers": {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}},
}}


class TokenOut(BaseModel):
    """An OAuth2 bearer token."""

    access_token: str
    token_type: str = "bearer"
    expires_in: int
    role: str


class NavLink(BaseModel):
    """A page of the app shell's navigation."""

    path: str
    label: str


class MeOut(BaseModel):
    """The signed-in user, with the city, their landing page and navigation (app shell)."""

    username: str
    role: str
    role_zh: str
    display_name: str
    owner_name: str | None
    city: str
    home: str
    nav: list[NavLink]


class AuditEntry(BaseModel):
    """One row of the audit log."""

    id: int
    at: dt.datetime
    actor: str
    actor_role: str | None
    action: str
    table_name: str
    row_key: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request: str | None


class UserOut(BaseModel):
    """A staff account (no password hash)."""

    id: int
    username: str
    display_name: str
    role: str
    owner_name: str | None
    active: bool
    created_at: dt.datetime


def login_throttle(settings: ApiSettings) -> LoginThrottle:
    """The sign-in throttle of one app process (create_app keeps it on app.state)."""
    window_s = settings.login_window_min * 60
    max_s = max(settings.login_max_lockout_s, settings.login_lockout_s)

    def keys(free: int) -> KeyThrottle:
        return KeyThrottle(free_failures=free, window_s=window_s,
                           base_delay_s=settings.login_lockout_s, max_delay_s=max_s)

    return LoginThrottle(users=keys(settings.login_max_failures),
                         addresses=keys(settings.login_max_failures_per_address),
                         shared=settings.shared_throttle)


class SignInThrottledError(Exception):
    """Too many failures: the attempt was refused without looking at the password."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many failed sign-ins; try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


def _check_credentials(request: Request, session: Session, *, username: str,
                       password: str) -> User:
    """The user, unless throttled (SignInThrottledError) or wrong (AuthenticationError).

    Each failure and each lockout it starts is written to the audit log.
    """
    throttle: LoginThrottle = request.app.state.login_throttle
    address = request.client.host if request.client else "unknown"
    who = {"username": username, "address": address}
    verdict = throttle.begin(**who)
    if not verdict.allowed:
        logger.info("sign-in of %r from %s refused for %d s", username[:64], address,
                    verdict.retry_after_s)
        raise SignInThrottledError(verdict.retry_after_s)
    try:
        # The counts every app process shares: a lockout earned on another worker holds here.
        shared_wait = throttle.shared and shared.sign_in_wait(
            session, user_key=throttle.user_key(username), address=address)
        if shared_wait:
            throttle.abandoned(**who)
            logger.info("sign-in of %r from %s refused for %d s (shared count)",
                        username[:64], address, shared_wait)
            raise SignInThrottledError(shared_wait)
        if _unstorable(username) or _unstorable(password):
            # No account holds these (PostgreSQL text has no NUL; scrypt wants UTF-8), and the
            # database driver would fail on them: wrong, after the same hashing time.
            auth.hash_password(password.encode("utf-8", "replace").decode("utf-8"))
            raise AuthenticationError("wrong username or password")
        user = auth.authenticate(session, username=username, password=password)
    except AuthenticationError:
        locked_for = throttle.failed(**who)
        _audit_failure(request, session, throttle, username=username, address=address,
                       failures=throttle.users.failures(throttle.user_key(username)),
                       locked_for=locked_for)
        raise
    except SignInThrottledError:
        raise
    except BaseException:
        throttle.abandoned(**who)
        raise
    throttle.succeeded(**who)
    if throttle.shared:
        shared.forget_sign_in_failures(session, user_key=throttle.user_key(username))
    return user


def _unstorable(value: str) -> bool:
    return "\x00" in value or any("\ud800" <= c <= "\udfff" for c in value)


def _audit_failure(request: Request, session: Session, throttle: LoginThrottle, *,
                   username: str, address: str, failures: int, locked_for: int) -> None:
    where = f"{request.method} {request.url.path}"
    try:
        session.rollback()  # the failed lookup's read-only transaction
        if throttle.shared:
            # The shared counts (all processes) are the truth: this process's own may be behind
            # (failures elsewhere) or ahead (a success elsewhere reset the account).
            locked_for = 0
            for kind, key, policy in (("user", throttle.user_key(username), throttle.users),
                                      ("address", address, throttle.addresses)):
                counted, lock = shared.record_sign_in_failure(session, kind=kind, key=key,
                                                              policy=policy)
                throttle.adopt(kind, key, failures=counted, lockout_s=lock)
                failures = counted if kind == "user" else failures
                locked_for = max(locked_for, lock)
        record_sign_in(session, username=username, event="failed", address=address,
                       request=where, details={"failures": failures})
        if locked_for:
            record_sign_in(session, username=username, event="locked", address=address,
                           request=where, details={"failures": failures,
                                                   "locked_for_s": locked_for})
        session.commit()
    except SQLAlchemyError:
        # The wrong password is still refused; a missing audit row must not become a 500.
        session.rollback()
        logger.exception("could not write the audit row of a failed sign-in from %s", address)
    if locked_for:
        logger.warning("sign-in locked for %d s after %d failures (user %r, address %s)",
                       locked_for, failures, username[:64], address)


def _throttled_json(exc: SignInThrottledError) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=429,
                        headers={"Retry-After": str(exc.retry_after_s)})


def _safe_next(target: str | None) -> str:
    # Only same-site paths: an open redirect to another host would help phishing. Browsers
    # read `\` as `/` and drop tabs and newlines, so `/\evil.com` and `/\t/evil.com` are
    # `//evil.com` to them; any control character or backslash is refused outright.
    if (not target or not target.startswith("/") or target.startswith("//")
            or "\\" in target or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target)):
        return "/"
    return target


@router.post("/auth/token", response_model=TokenOut, summary="Sign in (OAuth2 password flow)",
             responses=THROTTLED)
def issue_token(request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()],
                session: SessionDep) -> TokenOut | JSONResponse:
    """Exchange username and password for a bearer token; failures are throttled (429)."""
    try:
        user = _check_credentials(request, session, username=form.username,
                                  password=form.password)
    except SignInThrottledError as exc:
        return _throttled_json(exc)
    token = auth.issue_token(session, user=user)
    session.commit()
    return TokenOut(access_token=token, expires_in=int(auth.DEFAULT_TOKEN_HOURS * 3600),
                    role=user.role)


@router.post("/auth/login", include_in_schema=False)
def login(request: Request, session: SessionDep, settings: SettingsDep,
          username: Annotated[str, Form(max_length=64)],
          password: Annotated[str, Form(max_length=256)],
          next_path: Annotated[str, Form(alias="next", max_length=500)] = "/") -> Response:
    """Login form target: sets the HttpOnly cookie and goes back to the page asked for."""
    try:
        user = _check_credentials(request, session, username=username, password=password)
    except SignInThrottledError as exc:
        message = f'<p class="err">登录失败次数过多，请 {exc.retry_after_s} 秒后再试</p>'
        return HTMLResponse(_login_html(settings, next_path=next_path, message=message),
                            status_code=429, headers={"Retry-After": str(exc.retry_after_s)})
    except AuthenticationError:
        return RedirectResponse(f"/login?error=1&next={quote(_safe_next(next_path))}",
                                status_code=303)
    token = auth.issue_token(session, user=user)
    session.commit()
    # The plain form (next "/") lands on the role's main page; a page that sent the user to
    # sign in gets them back.
    target = _safe_next(next_path)
    if target == "/":
        target = home_for(user.role, page_paths(request.app))
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(TOKEN_COOKIE, token, max_age=int(auth.DEFAULT_TOKEN_HOURS * 3600),
                        httponly=True, samesite="strict", path="/",
                        secure=settings.api.secure_cookies)
    return response


@router.post("/auth/logout", status_code=204, summary="Sign out (revoke this token)")
def logout(request: Request, session: SessionDep, settings: SettingsDep,
           user: OptionalUserDep) -> Response:
    """Revoke the token of this request and clear the login cookie."""
    header = request.headers.get("authorization", "")
    token = header[7:] if header.lower().startswith("bearer ") else \
        request.cookies.get(TOKEN_COOKIE)
    if token:
        auth.revoke_token(session, token)
        session.commit()
    response = Response(status_code=204)
    response.delete_cookie(TOKEN_COOKIE, path="/", httponly=True, samesite="strict",
                           secure=settings.api.secure_cookies)
    return response


@router.get("/auth/me", response_model=MeOut, summary="The signed-in user")
def me(request: Request, user: StaffDep, settings: SettingsDep) -> MeOut:
    """Who the token belongs to, their role, landing page and the pages they are offered."""
    available = page_paths(request.app)
    return MeOut(username=user.username, role=user.role,
                 role_zh=role_label(user.role), display_name=user.display_name or user.username,
                 owner_name=user.owner_name, city=settings.city.name,
                 home=home_for(user.role, available),
                 nav=[NavLink(path=p.path, label=p.label)
                      for p in nav_for(user.role, available)])


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
def login_page(settings: SettingsDep,
               next_path: Annotated[str, Query(alias="next", max_length=500)] = "/",
               error: Annotated[int, Query(ge=0, le=1)] = 0) -> HTMLResponse:
    """A zh-CN sign-in form for the staff pages."""
    message = '<p class="err">用户名或密码错误</p>' if error else ""
    return HTMLResponse(_login_html(settings, next_path=next_path, message=message))


def _login_html(settings: Settings, *, next_path: str, message: str) -> str:
    city = escape(settings.city.name)
    return f"""<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>登录 · {city} 数字化城管平台</title>
<style>
body{{font-family:"Noto Sans CJK SC","Microsoft YaHei","PingFang SC",sans-serif;
  max-width:22rem;margin:4rem auto;padding:0 1rem;color:#222}}
label{{display:block;margin:.8rem 0 .2rem}} input{{width:100%;padding:.5rem;box-sizing:border-box}}
button{{margin-top:1rem;padding:.5rem 1.5rem}} .err{{color:#b00}}
</style></head>
<body><h1>{city} 数字化城管平台</h1><h2>工作人员登录</h2>{message}
<form method="post" action="/auth/login">
<input type="hidden" name="next" value="{escape(_safe_next(next_path))}">
<label for="username">用户名</label>
<input id="username" name="username" autocomplete="username" required>
<label for="password">密码</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">登录</button>
</form>
<p><a href="/public">便民服务地图（无需登录）</a></p>
</body></html>
"""


@router.get("/audit", response_model=list[AuditEntry], summary="Audit log (admins only)")
def audit_log(
    session: SessionDep, user: AdminDep, paging: PagingDep,
    table: Annotated[str | None, Query(max_length=64, description="table name, e.g. cases")]
    = None,
    row_key: Annotated[str | None, Query(max_length=64, description="id or code of the row")]
    = None,
    actor: Annotated[str | None, Query(max_length=64, description="username")] = None,
    action: Annotated[str | None, Query(description="INSERT, UPDATE, DELETE or BULK")] = None,
    since: Annotated[SaneDatetime | None, Query(description="from this time (with offset)")]
    = None,
    until: Annotated[SaneDatetime | None, Query(description="up to this time")] = None,
) -> list[AuditEntry]:
    """Every write, newest first: who, when, what, the row before and after."""
    rows = read_audit(session, table=table, row_key=row_key, actor=actor, action=action,
                      since=since, until=until, limit=paging.limit, offset=paging.offset)
    return [AuditEntry(**r) for r in rows]


@router.get("/users", response_model=list[UserOut], summary="Staff accounts (admins only)")
def users(session: SessionDep, user: AdminDep) -> list[UserOut]:
    """Every account with its role; passwords never leave the database."""
    return [UserOut(**r) for r in auth.list_users(session)]  # type: ignore[arg-type]
