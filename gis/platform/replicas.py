"""Read replicas: streaming hot standbys of the private cluster, and routing reads to them.

`ReplicaManager` makes, lists and removes standbys of the private cluster in
`.citygrid/replicas/<name>` with PostgreSQL's own streaming replication (pg_basebackup -R with a
physical replication slot, loopback only). `ReadRouter` hands out sessions for reads: a standby
whose replay lag is within the bound, else the primary; a standby that fails to connect is
skipped for a while, and when the primary is down every standby serves (stale beats nothing).
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from gis.platform.cluster import PrivateCluster
from gis.platform.db import APP_ROLE, PUBLIC_ROLE, Role, libpq_options, session_options
from gis.platform.errors import DatabaseUnavailableError, InvalidInputError
from gis.platform.settings import ClusterSettings, Settings

NAME = re.compile(r"^[a-z][a-z0-9_]{0,29}$")
LSN_TEXT = re.compile(r"^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$")


def lsn_to_int(value: str) -> int | None:
    """'16/B374D848' as a byte position; None for anything else (input from clients)."""
    if not LSN_TEXT.match(value or ""):
        return None
    high, low = value.split("/")
    return (int(high, 16) << 32) + int(low, 16)


def int_to_lsn(value: int) -> str:
    """A byte position as PostgreSQL writes an LSN."""
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


# ---------------------------------------------------------------- standbys of the private cluster


@dataclass(frozen=True)
class ReplicaInfo:
    """One standby of the private cluster, as `citygrid db replica list` shows it."""

    name: str
    data_dir: Path
    running: bool
    port: int | None
    slot: str
    replay_lag_s: float | None = None  # from the primary's pg_stat_replication
    behind_bytes: int | None = None


class ReplicaManager:
    """Create, list and remove hot standbys of the private cluster (loopback only)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.primary = PrivateCluster(settings.cluster)
        self.root = settings.cluster.data_dir.parent / "replicas"

    def _cluster(self, name: str) -> PrivateCluster:
        own = ClusterSettings(data_dir=self.root / name, pg_bin=self.settings.cluster.pg_bin,
                              user=self.settings.cluster.user)
        return PrivateCluster(own)

    def _primary_engine(self) -> Engine:
        status = self.primary.status()
        if not status.running:
            raise DatabaseUnavailableError(
                f"the private cluster in {status.data_dir} is not running; run `citygrid db up`")
        return create_engine(status.url(self.settings.cluster.user, "postgres"),
                             isolation_level="AUTOCOMMIT", poolclass=NullPool)

    @staticmethod
    def check_name(name: str) -> str:
        """A replica name: lower-case letters, digits and _, starting with a letter."""
        if not NAME.match(name):
            raise InvalidInputError(f"replica name {name!r} must match {NAME.pattern}")
        return name

    def prepare_primary(self) -> None:
        """Make the primary able to stream: wal_level, senders and a loopback hba entry."""
        engine = self._primary_engine()
        restart = False
        try:
            with engine.connect() as conn:
                wal_level = conn.execute(text("SHOW wal_level")).scalar_one()
                senders = int(conn.execute(text("SHOW max_wal_senders")).scalar_one())
                if wal_level == "minimal" or senders < 4:
                    conn.execute(text("ALTER SYSTEM SET wal_level = 'replica'"))
                    conn.execute(text("ALTER SYSTEM SET max_wal_senders = 10"))
                    restart = True
                # initdb's default pg_hba.conf has these lines; a hand-edited one may not.
                rules = conn.execute(text(
                    "SELECT count(*) FROM pg_hba_file_rules WHERE 'replication' = ANY(database) "
                    "AND (type = 'local' OR address = '127.0.0.1')")).scalar_one()
                if not rules:
                    hba = Path(conn.execute(text("SHOW hba_file")).scalar_one())
                    with hba.open("a") as out:
                        out.write("\n# citygrid db replica: standbys on loopback\n"
                                  "host replication all 127.0.0.1/32 trust\n")
                    conn.execute(text("SELECT pg_reload_conf()"))
        finally:
            engine.dispose()
        if restart:
            self.primary.down()
            self.primary.up()

    def add(self, name: str) -> ReplicaInfo:
        """Start a new streaming standby `name` (pg_basebackup -R with its own slot)."""
        self.check_name(name)
        replica = self._cluster(name)
        if replica.status().initialised:
            raise InvalidInputError(f"replica {name!r} exists in {replica.root}; "
                                    f"remove it first (`citygrid db replica remove {name}`)")
        self.prepare_primary()
        port = self.primary.status().port
        slot = f"citygrid_{name}"
        self._drop_slot(slot)  # left over from an add that failed half-way
        replica._prepare_folder()
        try:
            # -R writes standby.signal and primary_conninfo; -C -S keep WAL for this standby
            # on the primary until it has replayed it, so a slow standby never falls off.
            replica._run([replica.program("pg_basebackup"), "-h", "127.0.0.1", "-p", str(port),
                          "-U", self.settings.cluster.user, "-D", str(replica.pgdata), "-R",
                          "-X", "stream", "-C", "-S", slot, "-c", "fast"])
            replica.up()
        except DatabaseUnavailableError:
            if replica.status().running:
                replica.down()
            shutil.rmtree(replica.root, ignore_errors=True)
            self._drop_slot(slot)
            raise
        return self.info(name)

    def _drop_slot(self, slot: str) -> None:
        engine = self._primary_engine()
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT pg_drop_replication_slot(slot_name) "
                                  "FROM pg_replication_slots WHERE slot_name = :s AND NOT active"),
                             {"s": slot})
        finally:
            engine.dispose()

    def names(self) -> list[str]:
        """Names of the standbys that have a folder."""
        if not self.root.exists():
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if p.is_dir() and NAME.match(p.name) and (p / "data").exists())

    def info(self, name: str) -> ReplicaInfo:
        """State of standby `name`, with its lag as the primary sees it."""
        status = self._cluster(name).status()
        slot = f"citygrid_{name}"
        lag = behind = None
        if self.primary.status().running:
            engine = self._primary_engine()
            try:
                with engine.connect() as conn:
                    row = conn.execute(text(
                        "SELECT extract(epoch FROM r.replay_lag)::float8, "
                        "pg_current_wal_lsn() - s.restart_lsn "
                        "FROM pg_replication_slots s "
                        "LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid "
                        "WHERE s.slot_name = :s"), {"s": slot}).first()
            finally:
                engine.dispose()
            if row is not None:
                lag = float(row[0]) if row[0] is not None else (0.0 if status.running else None)
                behind = int(row[1]) if row[1] is not None else None
        return ReplicaInfo(name, status.data_dir, status.running, status.port, slot, lag, behind)

    def list_all(self) -> list[ReplicaInfo]:
        """Every standby of the private cluster."""
        return [self.info(name) for name in self.names()]

    def start_all(self) -> list[str]:
        """Start the standbys that are stopped (after the primary); their names."""
        started = []
        for name in self.names():
            replica = self._cluster(name)
            if not replica.status().running:
                replica.up()
                started.append(name)
        return started

    def remove(self, name: str) -> None:
        """Stop standby `name`, drop its slot on the primary and delete its files."""
        self.check_name(name)
        replica = self._cluster(name)
        if not replica.root.exists():
            raise InvalidInputError(f"no replica {name!r} in {self.root}")
        replica.down()
        if self.primary.status().running:
            self._drop_slot(f"citygrid_{name}")
        shutil.rmtree(replica.root)

    def owner_urls(self) -> list[tuple[str, URL]]:
        """(name, owner URL) of the running standbys (the database of the settings)."""
        urls = []
        for name in self.names():
            status = self._cluster(name).status()
            if status.running:
                urls.append((name, make_url(status.url(self.settings.cluster.user,
                                                       self.settings.db.name))))
        return urls


def replica_urls(settings: Settings, role: Role) -> list[tuple[str, URL]]:
    """(name, URL as `role`) of every configured standby: the setting, or the private ones."""
    if settings.replicas.urls:
        owners = [(make_url(u).host or f"replica{i}", make_url(u))
                  for i, u in enumerate(settings.replicas.url_list(), 1)]
    elif settings.db.url:
        return []  # an external primary without CITYGRID_DB_REPLICA_URLS: no standbys
    else:
        owners = ReplicaManager(settings).owner_urls()
    password = settings.db.app_password if role == "app" else settings.db.public_password
    user = APP_ROLE if role == "app" else PUBLIC_ROLE
    # Physical replication copies the roles, so a standby has the same least-privilege ones.
    return [(name, url.set(username=user, password=password)) for name, url in owners]


# ---------------------------------------------------------------- routing reads


@dataclass
class Standby:
    """One standby as the router sees it: its pool and what it last measured."""

    name: str
    engine: Engine
    sessions: sessionmaker[Session]
    down_until: float = 0.0
    checked_at: float = float("-inf")
    lag_s: float | None = None
    replay_lsn: int | None = None


@dataclass
class PrimaryProbe:
    """The primary's WAL position, sampled at most every `check_s`; None while it is down."""

    engine: Engine
    check_s: float
    down_s: float
    clock: Callable[[], float] = time.monotonic
    lsn: int | None = None
    sampled_at: float = float("-inf")
    down_until: float = 0.0
    history: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=600))

    def current(self) -> int | None:
        """Latest sampled LSN of the primary, or None when it cannot be reached."""
        now = self.clock()
        if now < self.down_until:
            return None
        if now - self.sampled_at >= self.check_s:
            try:
                with self.engine.connect() as conn:
                    self.lsn = int(conn.execute(text(
                        "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")).scalar_one())
            except DBAPIError:
                self.lsn, self.down_until = None, now + self.down_s
                return None
            self.sampled_at = now
            self.history.append((now, self.lsn))
        return self.lsn

    def staleness_bound(self, replay_lsn: int, now: float) -> float | None:
        """Seconds since the primary was last seen at or before `replay_lsn` (upper bound)."""
        best = None
        for at, lsn in self.history:
            if lsn <= replay_lsn:
                best = at
        return None if best is None else now - best


class ReadRouter:
    """Sessions for reads of one role: a fresh-enough standby, else the primary."""

    def __init__(self, probe: PrimaryProbe, standbys: list[Standby], *, max_lag_s: float,
                 down_s: float, check_s: float) -> None:
        self.probe = probe
        self.standbys = standbys
        self.max_lag_s, self.down_s, self.check_s = max_lag_s, down_s, check_s
        self._lock = threading.Lock()
        self._next = 0

    def _measure(self, standby: Standby, now: float) -> None:
        primary_lsn = self.probe.current()
        with standby.engine.connect() as conn:
            row = conn.execute(text(
                "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn() - '0/0'::pg_lsn, "
                "extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp())"
                "::float8")).one()
        in_recovery, replay, since_commit = row
        if not in_recovery:  # promoted: it is a primary now, not a copy that may lag
            standby.lag_s, standby.replay_lsn = 0.0, None
        else:
            standby.replay_lsn = int(replay) if replay is not None else None
            if primary_lsn is None or standby.replay_lsn is None:
                standby.lag_s = None  # the primary is down: nothing to compare with
            elif standby.replay_lsn >= primary_lsn:
                standby.lag_s = 0.0
            else:
                # Two upper bounds of how old its data is: the last replayed commit, and when
                # the primary was last sampled at or before the replayed position.
                bounds = [b for b in (since_commit,
                                      self.probe.staleness_bound(standby.replay_lsn, now))
                          if b is not None]
                standby.lag_s = min(bounds) if bounds else float("inf")
        standby.checked_at = now

    def _usable(self, standby: Standby, now: float, min_lsn: int | None) -> bool:
        if now < standby.down_until:
            return False
        if now - standby.checked_at >= self.check_s:
            try:
                self._measure(standby, now)
            except DBAPIError:
                standby.down_until = now + self.down_s
                return False
        if min_lsn is not None and (standby.replay_lsn is None or standby.replay_lsn < min_lsn):
            return False  # read-your-own-writes: it has not replayed this client's write yet
        if standby.lag_s is None:
            return self.probe.current() is None  # primary down: serve, however stale
        return standby.lag_s <= self.max_lag_s

    def candidates(self, *, min_lsn: int | None = None) -> list[Standby]:
        """The standbys fresh enough to read now, the next in turn first (may be empty)."""
        now = self.probe.clock()
        with self._lock:
            order = self.standbys[self._next:] + self.standbys[:self._next]
            self._next = (self._next + 1) % max(len(self.standbys), 1)
            return [s for s in order if self._usable(s, now, min_lsn)]

    def mark_down(self, standby: Standby) -> None:
        """Skip `standby` for `down_s` seconds (a connection to it just failed)."""
        standby.down_until = self.probe.clock() + self.down_s

    def session(self, *, min_lsn: int | None = None) -> tuple[Session | None, str]:
        """A session on a usable standby and its name, or (None, 'primary'): read there."""
        for standby in self.candidates(min_lsn=min_lsn):
            session = standby.sessions()
            try:
                session.connection()  # fail here, once, rather than inside the route
            except DBAPIError:
                session.close()
                self.mark_down(standby)
                continue
            return session, standby.name
        return None, "primary"

    def dispose(self) -> None:
        """Close every standby pool and the primary probe's."""
        for standby in self.standbys:
            standby.engine.dispose()
        self.probe.engine.dispose()


def make_read_routers(settings: Settings, probe_engine: Engine) -> dict[Role, ReadRouter]:
    """One router per role over the configured standbys (none: every read goes to primary)."""
    cfg = settings.replicas
    # Its own small pool with a connect timeout: a primary that vanished from the network must
    # not hang the reads that only ask it for its WAL position.
    probe = PrimaryProbe(create_engine(probe_engine.url, pool_pre_ping=True, pool_size=1,
                                       max_overflow=1, connect_args={"connect_timeout": "3"}),
                         check_s=cfg.check_s, down_s=cfg.down_s)
    routers: dict[Role, ReadRouter] = {}
    roles: tuple[Role, ...] = ("app", "public")
    for role in roles:
        options = {"options": libpq_options(session_options(settings, role)),
                   "connect_timeout": "3"}
        standbys = []
        for name, url in replica_urls(settings, role):
            engine = create_engine(url, pool_pre_ping=True, pool_size=settings.db.pool_size,
                                   max_overflow=settings.db.pool_size, connect_args=options)
            standbys.append(Standby(name, engine, sessionmaker(bind=engine,
                                                               expire_on_commit=False)))
        routers[role] = ReadRouter(probe, standbys, max_lag_s=cfg.max_lag_s,
                                   down_s=cfg.down_s, check_s=cfg.check_s)
    return routers


def primary_lsn(engine: Engine) -> int | None:
    """The primary's current WAL position (after a write), or None when it cannot say."""
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn"))
                       .scalar_one())
    except DBAPIError:
        return None
