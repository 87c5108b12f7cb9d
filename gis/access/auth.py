"""Users, roles and API tokens: scrypt password hashes, opaque tokens stored as SHA-256.

Roles: admin, planner, dispatcher, grid_owner, analyst (staff, each a row in `users`); the
public is anonymous and has no row. What each role may do is declared at the routes
(`api/auth.py`); a grid owner's rows are limited in the database itself by row-level security
(migration 0010), switched on for a transaction with `scope_transaction`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any, Literal, get_args

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from gis.platform.errors import AuthenticationError, ConflictError, InvalidInputError, NotFoundError

Role = Literal["admin", "planner", "dispatcher", "grid_owner", "analyst", "supervisor"]
ROLES: tuple[str, ...] = get_args(Role)
ROLE_LABELS_ZH = {"admin": "管理员", "planner": "规划员", "dispatcher": "调度员",
                  "grid_owner": "网格责任人", "analyst": "分析员", "supervisor": "监督员"}
SCOPED_DB_ROLE = "citygrid_grid_owner"
TOKEN_PREFIX = "cg_"
DEFAULT_TOKEN_HOURS = 12
MIN_PASSWORD_LENGTH = 8
# scrypt work factors (RFC 7914's interactive-login figures): ~16 MB and ~50 ms per check.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


@dataclass(frozen=True)
class User:
    """A signed-in staff member."""

    id: int
    username: str
    role: str
    display_name: str = ""
    owner_name: str | None = None
    # A district sub-centre's staff (6-digit code); None = the city centre, which sees all.
    # The database enforces it (migration 0028's policy on cases reads users.district_code).
    district_code: str | None = None

    @property
    def is_grid_owner(self) -> bool:
        """True when the database limits this user to their own grids."""
        return self.role == "grid_owner"


def hash_password(password: str) -> str:
    """scrypt hash of `password` with a random salt, as 'scrypt$N$r$p$salt$hash' (hex)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """True when `password` matches the stored scrypt hash (constant-time compare)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        candidate = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n),
                                   r=int(r), p=int(p))
    except ValueError:
        return False
    return hmac.compare_digest(candidate.hex(), digest)


def _check_role(role: str, owner_name: str | None) -> None:
    if role not in ROLES:
        raise InvalidInputError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
    if role == "grid_owner" and not owner_name:
        raise InvalidInputError("role 'grid_owner' needs owner_name (as in grid_owners)")
    if role != "grid_owner" and owner_name:
        raise InvalidInputError(f"owner_name {owner_name!r} is only for role 'grid_owner'")


def create_user(session: Session, *, username: str, password: str, role: str,
                display_name: str = "", owner_name: str | None = None,
                district_code: str | None = None) -> User:
    """Add a staff user; refuses unknown roles, short passwords and taken usernames;
    `district_code` scopes them to one loaded district (None: the city centre)."""
    _check_role(role, owner_name)
    if district_code is not None and not session.execute(
            text("SELECT 1 FROM districts WHERE code = :d"), {"d": district_code}).first():
        raise InvalidInputError(f"district {district_code!r} is not loaded (table districts)")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInputError(f"password of user {username!r} is shorter than "
                                f"{MIN_PASSWORD_LENGTH} characters")
    taken = session.execute(text("SELECT 1 FROM users WHERE username = :u"),
                            {"u": username}).first()
    if taken:
        raise ConflictError(f"user {username!r} already exists")
    row = session.execute(text(
        "INSERT INTO users (username, display_name, role, owner_name, district_code, "
        "password_hash) VALUES (:u, :d, :r, :o, :dc, :h) RETURNING id"),
        {"u": username, "d": display_name, "r": role, "o": owner_name, "dc": district_code,
         "h": hash_password(password)}).scalar_one()
    return User(row, username, role, display_name, owner_name, district_code)


def get_user(session: Session, username: str) -> User:
    """The active user called `username`."""
    row = session.execute(text(
        "SELECT id, username, role, display_name, owner_name, district_code FROM users "
        "WHERE username = :u AND active"), {"u": username}).first()
    if row is None:
        raise NotFoundError(f"no active user {username!r}")
    return _user(row)


def list_users(session: Session) -> list[dict[str, object]]:
    """Every user without password hashes, by username."""
    rows = session.execute(text(
        "SELECT id, username, display_name, role, owner_name, district_code, active, created_at "
        "FROM users "
        "ORDER BY username")).mappings()
    return [dict(r) for r in rows]


def set_active(session: Session, *, username: str, active: bool) -> None:
    """Enable or disable a user; disabling also revokes their tokens."""
    updated = session.execute(text("UPDATE users SET active = :a WHERE username = :u "
                                   "RETURNING id"), {"a": active, "u": username}).first()
    if updated is None:
        raise NotFoundError(f"no user {username!r}")
    if not active:
        session.execute(text("UPDATE api_tokens SET revoked_at = now() "
                             "WHERE user_id = :i AND revoked_at IS NULL"), {"i": updated.id})


def authenticate(session: Session, *, username: str, password: str) -> User:
    """The user with these credentials; one vague error for a wrong name or password."""
    row = session.execute(text(
        "SELECT id, username, role, display_name, owner_name, district_code, password_hash "
        "FROM users "
        "WHERE username = :u AND active"), {"u": username}).first()
    # Hash even for unknown users so response time does not reveal which usernames exist.
    stored = row.password_hash if row else hash_password("not-a-user")
    if not verify_password(password, stored) or row is None:
        raise AuthenticationError("wrong username or password")
    return _user(row)


def _user(row: Any) -> User:
    district = row.district_code.strip() if row.district_code else None
    return User(row.id, row.username, row.role, row.display_name, row.owner_name, district)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(session: Session, *, user: User, hours: float = DEFAULT_TOKEN_HOURS) -> str:
    """A new random bearer token for `user`, valid for `hours`; only its hash is stored."""
    if not 0 < hours <= 24 * 366:
        raise InvalidInputError(f"token lifetime {hours} h must be within (0, 8784]")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.execute(text(
        "INSERT INTO api_tokens (token_sha256, user_id, expires_at) "
        "VALUES (:t, :u, now() + make_interval(secs => :s))"),
        {"t": _digest(token), "u": user.id, "s": hours * 3600})
    return token


def user_for_token(session: Session, token: str) -> User:
    """The active user holding this unexpired, unrevoked token."""
    row = session.execute(text(
        "SELECT u.id, u.username, u.role, u.display_name, u.owner_name, u.district_code "
        "FROM api_tokens t "
        "JOIN users u ON u.id = t.user_id WHERE t.token_sha256 = :t AND u.active "
        "AND t.revoked_at IS NULL AND t.expires_at > now()"), {"t": _digest(token)}).first()
    if row is None:
        raise AuthenticationError("token is unknown, expired or revoked")
    return _user(row)


def revoke_token(session: Session, token: str) -> None:
    """Revoke one token (logout); unknown tokens are ignored."""
    session.execute(text("UPDATE api_tokens SET revoked_at = now() "
                         "WHERE token_sha256 = :t AND revoked_at IS NULL"), {"t": _digest(token)})


def tag_transaction(session: Session | Connection, *, actor: str, role: str | None = None,
                    request: str | None = None) -> None:
    """Name who writes in this transaction, for the audit trigger."""
    session.execute(text(
        "SELECT set_config('citygrid.actor', :a, true), "
        "set_config('citygrid.actor_role', :r, true), "
        "set_config('citygrid.request', :q, true)"),
        {"a": actor, "r": role or "", "q": (request or "")[:500]})


def scope_transaction(session: Session | Connection, *, user: User) -> None:
    """Run the rest of this transaction as the grid-owner database role, for RLS."""
    session.execute(text(f"SET LOCAL ROLE {SCOPED_DB_ROLE}"))
    session.execute(text("SELECT set_config('citygrid.owner_name', :o, true)"),
                    {"o": user.owner_name or ""})
