"""Backups: pg_dump custom-format archives of a citygrid database, and restores that never
leave a half-restored database behind.

A restore goes into a fresh temporary database first (`--single-transaction --exit-on-error`);
only when that succeeded is the target swapped for it by renaming, so a bad or truncated archive
leaves the target exactly as it was. The client programs are PostgreSQL 15's, found the way the
private cluster finds its own; the password goes through PGPASSWORD, never the command line.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from gis.platform.cluster import DEBIAN_PG_BIN, PrivateCluster
from gis.platform.db import drop_database, ensure_database, libpq_dsn
from gis.platform.errors import BackupError, DatabaseUnavailableError
from gis.platform.settings import ClusterSettings

Progress = Callable[[str], None]

CLIENT_PACKAGE = "postgresql-client-15"
ARCHIVE_MAGIC = b"PGDMP"  # first bytes of every pg_dump custom-format archive
# Databases a restore must never replace.
PROTECTED_DATABASES = frozenset({"postgres", "template0", "template1"})
# Comments on extensions need the extension's owner (a superuser); CREATE EXTENSION sets the
# same comment anyway, so these entries are left out and a non-superuser can restore.
_SKIPPED_TOC_ENTRY = re.compile(r"^\d+; \d+ \d+ COMMENT - EXTENSION ")
_CITYGRID_TOC_ENTRY = re.compile(r"^\d+; \d+ \d+ TABLE public alembic_version\b")


def client_program(name: str, cluster: ClusterSettings | None = None) -> str:
    """Path of PostgreSQL 15 client `name` (pg_dump, pg_restore), found as the cluster does."""
    try:
        return PrivateCluster(cluster or ClusterSettings()).program(name)
    except DatabaseUnavailableError as exc:
        raise BackupError(
            f"PostgreSQL program {name!r} not found in {DEBIAN_PG_BIN} or on PATH; install the "
            f"Debian package {CLIENT_PACKAGE} (apt-get install {CLIENT_PACKAGE})"
        ) from exc


def dump_database(url: URL | str, path: Path | str, *, progress: Progress | None = None,
                  cluster: ClusterSettings | None = None) -> Path:
    """Write the database at `url` to `path` as a pg_dump custom-format archive; returns `path`."""
    url = make_url(url)
    target = Path(path)
    if target.is_dir():
        raise BackupError(f"backup file {target} is a folder; give a file name")
    if not target.parent.is_dir():
        raise BackupError(f"folder {target.parent} for backup file {target} does not exist")
    pg_dump = client_program("pg_dump", cluster)
    # Written next to the target and renamed at the end, so a failed dump never replaces a good
    # backup; mkstemp's mode 0600 stays, the archive holds password hashes.
    fd, partial_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.",
                                        suffix=".partial")
    os.close(fd)
    partial = Path(partial_name)
    try:
        _run([pg_dump, "--format=custom", "--verbose", f"--file={partial}",
              f"--dbname={_dsn(url)}"],
             url=url, what=f"pg_dump of database {url.database!r}", progress=progress)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def restore_database(url: URL | str, path: Path | str, *, replace: bool = False,
                     progress: Progress | None = None,
                     cluster: ClusterSettings | None = None) -> str:
    """Restore archive `path` as the database named in `url`; returns that database's name."""
    url = make_url(url)
    source = Path(path)
    name = url.database
    if not name or name in PROTECTED_DATABASES:
        raise BackupError(f"cannot restore into database {name!r}; name a citygrid database")
    pg_restore = client_program("pg_restore", cluster)
    _notify(progress, f"checking {source}")
    toc = _read_archive_toc(pg_restore, source)
    existing = _citygrid_tables(url)
    if existing and not replace:
        shown = ", ".join(existing[:5]) + (", …" if len(existing) > 5 else "")
        raise BackupError(
            f"database {name!r} already holds {len(existing)} citygrid tables ({shown}); "
            "restore with --force (replace=True) to replace it, or into another database name"
        )
    temp_url = url.set(database=_side_name(name, "restore"))
    _notify(progress, f"creating database {temp_url.database}")
    ensure_database(temp_url)
    swapped = False
    try:
        with tempfile.TemporaryDirectory(prefix="citygrid-restore-") as folder:
            listing = Path(folder) / "toc.list"
            listing.write_text("".join(line for line in toc
                                       if not _SKIPPED_TOC_ENTRY.match(line)))
            _run([pg_restore, "--exit-on-error", "--single-transaction", "--no-owner",
                  "--verbose", f"--use-list={listing}", f"--dbname={_dsn(temp_url)}",
                  str(source)],
                 url=temp_url, what=f"pg_restore of {source}", progress=progress)
        _notify(progress, "analysing the restored tables")
        _analyse(temp_url)
        _notify(progress, f"switching database {name!r} to the restored copy")
        _swap(url, str(temp_url.database))
        swapped = True
    finally:
        if not swapped:
            drop_database(temp_url)
    return name


def _notify(progress: Progress | None, message: str) -> None:
    if progress is not None:
        progress(message)


def _dsn(url: URL) -> str:
    # libpq URI without the password: that one goes through PGPASSWORD.
    return libpq_dsn(url.set(password=None))


def _run(args: list[str], *, url: URL, what: str, progress: Progress | None) -> None:
    env = dict(os.environ)
    if url.password is not None:
        env["PGPASSWORD"] = str(url.password)
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env, text=True, encoding="utf-8",
                            errors="replace")
    assert proc.stderr is not None
    lines: list[str] = []
    for raw in proc.stderr:
        line = raw.rstrip()
        lines.append(line)
        # "pg_dump: dumping contents of table "public.cases"" -> the part after the name
        _notify(progress, line.split(": ", 1)[-1])
    code = proc.wait()
    if code != 0:
        raise BackupError(f"{what} failed (exit {code}): {_error_text(lines)}")


def _error_text(lines: list[str]) -> str:
    wanted = [line for line in lines
              if "error:" in line or line.lstrip().startswith(("DETAIL:", "HINT:", "Command was:"))]
    return "; ".join(wanted or lines[-3:] or ["no message"])[-1000:]


def _read_archive_toc(pg_restore: str, source: Path) -> list[str]:
    """The archive's table of contents; refuses files that are not citygrid pg_dump archives."""
    if not source.is_file():
        raise BackupError(f"backup file {source} does not exist or is not a file")
    with source.open("rb") as handle:
        head = handle.read(len(ARCHIVE_MAGIC))
    if head != ARCHIVE_MAGIC:
        raise BackupError(
            f"{source} is not a pg_dump custom-format archive (it does not start with PGDMP); "
            "`citygrid db dump` writes one"
        )
    proc = subprocess.run([pg_restore, "--list", str(source)], capture_output=True, text=True,
                          encoding="utf-8", errors="replace", check=False)
    if proc.returncode != 0:
        raise BackupError(f"{source} is not a readable pg_dump archive: "
                          f"{_error_text(proc.stderr.splitlines())}")
    toc = proc.stdout.splitlines(keepends=True)
    if not any(_CITYGRID_TOC_ENTRY.match(line) for line in toc):
        raise BackupError(f"{source} is a pg_dump archive but not of a citygrid database "
                          "(it has no table alembic_version)")
    return toc


@contextmanager
def _connect(url: URL, *, autocommit: bool = False) -> Iterator[Connection]:
    engine = create_engine(url, poolclass=NullPool,
                           **({"isolation_level": "AUTOCOMMIT"} if autocommit else {}))
    try:
        with engine.connect() as conn:
            yield conn
    except SQLAlchemyError as exc:
        raise BackupError(f"database {url.database!r}: {str(exc).splitlines()[0]}") from exc
    finally:
        engine.dispose()


def _admin(url: URL) -> AbstractContextManager[Connection]:
    # CREATE/ALTER/DROP DATABASE cannot run inside a transaction block.
    return _connect(url.set(database="postgres"), autocommit=True)


def _database_exists(conn: Connection, name: str) -> bool:
    return bool(conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                             {"n": name}).scalar())


def _citygrid_tables(url: URL) -> list[str]:
    """Tables of schema public (other than PostGIS's spatial_ref_sys); [] when no database."""
    with _admin(url) as admin:
        if not _database_exists(admin, str(url.database)):
            return []
    with _connect(url) as conn:
        rows = conn.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename <> 'spatial_ref_sys' ORDER BY tablename = 'alembic_version' DESC, "
            "tablename"
        )).scalars()
        return [str(row) for row in rows]


def _analyse(url: URL) -> None:
    # pg_restore leaves the planner without statistics; the GiST-heavy queries need them.
    with _connect(url, autocommit=True) as conn:
        conn.execute(text("ANALYZE"))


def _side_name(name: str, purpose: str) -> str:
    # PostgreSQL cuts names at 63 bytes; keep the random suffix intact.
    suffix = f"_{purpose}_{secrets.token_hex(4)}"
    head = name.encode()[: 63 - len(suffix)].decode(errors="ignore")
    return head + suffix


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _swap(url: URL, restored: str) -> None:
    """Make database `restored` take the name of `url`'s database; the old one is dropped."""
    name = str(url.database)
    with _admin(url) as admin:
        if not _database_exists(admin, name):
            admin.execute(text(f"ALTER DATABASE {_ident(restored)} RENAME TO {_ident(name)}"))
            return
        old = _side_name(name, "replaced")
        # No new sessions while we swap, then end the current ones (the app reconnects to the
        # restored database through its pool's pre-ping).
        admin.execute(text(f"ALTER DATABASE {_ident(name)} WITH ALLOW_CONNECTIONS false"))
        try:
            _rename_when_idle(admin, name, old)
        except BaseException:
            admin.execute(text(f"ALTER DATABASE {_ident(name)} WITH ALLOW_CONNECTIONS true"))
            raise
        try:
            admin.execute(text(f"ALTER DATABASE {_ident(restored)} RENAME TO {_ident(name)}"))
        except BaseException:
            admin.execute(text(f"ALTER DATABASE {_ident(old)} RENAME TO {_ident(name)}"))
            admin.execute(text(f"ALTER DATABASE {_ident(name)} WITH ALLOW_CONNECTIONS true"))
            raise
        try:
            admin.execute(text(f"DROP DATABASE {_ident(old)} WITH (FORCE)"))
        except SQLAlchemyError as exc:
            raise BackupError(f"restored database {name!r}, but the replaced copy {old!r} could "
                              f"not be dropped: {str(exc).splitlines()[0]}") from exc


def _rename_when_idle(admin: Connection, name: str, new_name: str, attempts: int = 20) -> None:
    for attempt in range(attempts):
        admin.execute(text("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
                           "WHERE datname = :n AND pid <> pg_backend_pid()"), {"n": name})
        try:
            admin.execute(text(f"ALTER DATABASE {_ident(name)} RENAME TO {_ident(new_name)}"))
            return
        except SQLAlchemyError as exc:
            if "being accessed by other users" not in str(exc) or attempt == attempts - 1:
                raise BackupError(
                    f"cannot take database {name!r} offline for the restore: "
                    f"{str(exc).splitlines()[0]}"
                ) from exc
            time.sleep(0.25)
