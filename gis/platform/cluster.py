"""The project's private PostgreSQL + PostGIS cluster, kept in a data folder of the project."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from gis.platform.errors import DatabaseUnavailableError
from gis.platform.settings import ClusterSettings

DEBIAN_PG_BIN = Path("/usr/lib/postgresql/15/bin")


@dataclass(frozen=True)
class ClusterStatus:
    """What `citygrid db status` reports."""

    data_dir: Path
    initialised: bool
    running: bool
    port: int | None

    def url(self, user: str, dbname: str) -> str:
        """SQLAlchemy URL of a database in this cluster."""
        return f"postgresql+psycopg2://{user}@127.0.0.1:{self.port}/{dbname}"


class PrivateCluster:
    """Create, start, stop and describe the private cluster."""

    def __init__(self, settings: ClusterSettings) -> None:
        self.settings = settings
        self.root = settings.data_dir
        self.pgdata = self.root / "data"
        self.socket_dir = self.root / "run"
        self.log_file = self.root / "postgres.log"
        self.port_file = self.root / "port"

    # PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres`
    # account that Debian's package creates.
    def _os_user(self) -> str | None:
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam("postgres")
        except KeyError as exc:
            raise DatabaseUnavailableError(
                "running as root needs the 'postgres' system account (Debian package postgresql-15)"
            ) from exc
        return "postgres"

    def program(self, name: str) -> str:
        """Path of PostgreSQL 15 program `name` (pg_ctl, pg_dump, ...), from settings or Debian."""
        candidates = [self.settings.pg_bin, DEBIAN_PG_BIN]
        for folder in candidates:
            if folder and (folder / name).exists():
                return str(folder / name)
        found = shutil.which(name)
        if found:
            return found
        raise DatabaseUnavailableError(
            f"PostgreSQL program {name!r} not found in {DEBIAN_PG_BIN}; run ./manage.sh setup "
            "(installs postgresql-15 and postgresql-15-postgis-3)"
        )

    def _run(self, args: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        user = self._os_user()
        cmd = (["runuser", "-u", user, "--", *args]) if user else args
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if check and proc.returncode != 0:
            raise DatabaseUnavailableError(
                f"{' '.join(args[:2])} failed ({proc.returncode}): {proc.stderr.strip()[-800:]}"
            )
        return proc

    def status(self) -> ClusterStatus:
        """Describe the cluster without changing it."""
        initialised = (self.pgdata / "PG_VERSION").exists()
        running = False
        if initialised:
            running = self._run([self.program("pg_ctl"), "-D", str(self.pgdata), "status"],
                                check=False).returncode == 0
        port = int(self.port_file.read_text()) if self.port_file.exists() else None
        return ClusterStatus(self.root, initialised, running, port)

    def _prepare_folder(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        user = self._os_user()
        if user:
            info = pwd.getpwnam(user)
            for path in (self.root, self.socket_dir):
                os.chown(path, info.pw_uid, info.pw_gid)
            probe = subprocess.run(["runuser", "-u", user, "--", "test", "-w", str(self.root)],
                                   check=False)
            if probe.returncode != 0:
                raise DatabaseUnavailableError(
                    f"the 'postgres' account cannot reach {self.root}; set "
                    "CITYGRID_CLUSTER_DATA_DIR to a folder it can write, or run as a normal user"
                )

    def init(self) -> None:
        """Create the cluster's files (once)."""
        if (self.pgdata / "PG_VERSION").exists():
            return
        self._prepare_folder()
        self._run([self.program("initdb"), "-D", str(self.pgdata), "-U", self.settings.user,
                   "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"])

    def _choose_port(self) -> int:
        wanted = self.settings.port
        if wanted is None and self.port_file.exists():
            wanted = int(self.port_file.read_text())
        if wanted is not None and _port_is_free(wanted):
            return wanted
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    def up(self) -> ClusterStatus:
        """Initialise if needed and start the cluster on a loopback port; idempotent."""
        self.init()
        current = self.status()
        if current.running:
            return current
        port = self._choose_port()
        self.port_file.write_text(str(port))
        # Only loopback: the private cluster trusts local connections and must not be reachable.
        options = (f"-p {port} -c listen_addresses=127.0.0.1 "
                   f"-c unix_socket_directories={self.socket_dir} -c max_connections=200")
        self._run([self.program("pg_ctl"), "-D", str(self.pgdata), "-l", str(self.log_file),
                   "-w", "-t", "120", "-o", options, "start"])
        return self.status()

    def down(self) -> ClusterStatus:
        """Stop the cluster if it runs; data stays."""
        if self.status().running:
            self._run([self.program("pg_ctl"), "-D", str(self.pgdata), "-m", "fast", "-w", "stop"])
        return self.status()


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As PostgreSQL binds: connections of the last run still in TIME_WAIT do not block the
        # port. Without this, a restart while clients were connected moved the cluster to a
        # new port and a running app (its URL fixed at start) could never reconnect.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
