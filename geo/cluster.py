"""The embedded PostGIS cluster: a private PostgreSQL 15 + PostGIS 3 under ``var/``.

Used when no ``DATABASE_URL`` is configured, so that a fresh Debian machine needs no
database set up by hand. PostgreSQL refuses to run as root, so as root the cluster runs as
the ``postgres`` system user (created by Debian's package) and its directories belong to it.

Where it lives: ``<project>/var/postgres`` (``GRIDATLAS_VAR`` moves ``var/``), or, when root
runs a project from a folder other users cannot traverse (such as /root),
``/var/tmp/gridatlas-<hash of the var path>/postgres``. From the shell::

    python3 -m geo.cluster where     # print the cluster's folder
    python3 -m geo.cluster stop      # stop it, saying what it did
    python3 -m geo.cluster remove    # stop it and delete its folder with every database in it

(standard library only: works before the venv exists).
"""
from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["ClusterError", "Cluster", "cluster_root", "default_cluster", "main"]

PG_VERSION = "15"
PG_BIN = Path(f"/usr/lib/postgresql/{PG_VERSION}/bin")
POSTGIS_PACKAGE = f"postgresql-{PG_VERSION}-postgis-3"
POSTGIS_CONTROL = Path(f"/usr/share/postgresql/{PG_VERSION}/extension/postgis.control")
# Debian's postgresql-common creates (and systemd starts) a "main" cluster on port 5432 when a
# server package is installed, unless this file says create_main_cluster = false.
CREATECLUSTER_CONF = Path("/etc/postgresql-common/createcluster.conf")
CREATECLUSTER_CONF_TEXT = """\
# Written by GridAtlas before it installed PostgreSQL: GridAtlas runs a private cluster of its
# own, so Debian's packages should not create (and start) a "main" cluster on port 5432.
# Delete this line, or set it to true, to have the next postgresql-NN package create one.
create_main_cluster = false
"""
# What a cluster folder holds: anything else in it means it is not (only) ours to delete.
_CLUSTER_ENTRIES = {"data", "run", "postgres.log"}
# A unix socket path may not exceed 107 bytes; ".s.PGSQL.5432" takes 14 of them.
_SOCKET_DIR_MAX = 90


class ClusterError(RuntimeError):
    """The embedded cluster cannot be installed, created or started."""


def _log(message: str) -> None:
    print(f"[gridatlas] {message}", file=sys.stderr, flush=True)


class Cluster:
    """A PostgreSQL cluster whose data and socket live in one project folder.

    Parameters
    ----------
    root : Path
        The folder that holds ``data/``, ``run/`` and ``log``.
    database : str
        The database ``url()`` points at; created with the postgis extension.
    """

    port = 5432  # only names the socket file: the cluster listens on no TCP address

    def __init__(self, root: Path, database: str = "gridatlas"):
        self.root = Path(root).resolve()
        self.database = database
        self.user = self._run_user()

    # -- where things are -------------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        """The socket folder; moved under /tmp when the project path is too long for a socket."""
        wanted = self.root / "run"
        if len(str(wanted)) <= _SOCKET_DIR_MAX:
            return wanted
        digest = hashlib.sha1(str(self.root).encode()).hexdigest()[:12]
        return Path("/tmp") / f"gridatlas-{digest}"

    @property
    def log_file(self) -> Path:
        return self.root / "postgres.log"

    def url(self, database: str | None = None) -> str:
        """The SQLAlchemy URL of ``database`` (default: the cluster's own) over the socket."""
        return (
            f"postgresql+psycopg://{self.user}@/{database or self.database}"
            f"?host={self.socket_dir}&port={self.port}"
        )

    # -- lifecycle ----------------------------------------------------------------------------
    def ensure(self) -> str:
        """Install, create and start the cluster as needed; return the database URL. Idempotent."""
        self._ensure_postgis_installed()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        if not self.is_running():
            self.start()
        self.create_database(self.database)
        return self.url()

    def is_running(self) -> bool:
        """Whether the server accepts connections on its socket."""
        if not (self.data_dir / "PG_VERSION").exists():
            return False
        result = subprocess.run(
            [str(PG_BIN / "pg_isready"), "-q", "-h", str(self.socket_dir), "-p", str(self.port)],
            capture_output=True,
        )
        return result.returncode == 0

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        self._prepare_socket_dir()
        _log(f"starting PostgreSQL in {self.data_dir}")
        self._as_owner(
            [
                str(PG_BIN / "pg_ctl"), "start", "-w", "-t", "60",
                "-D", str(self.data_dir), "-l", str(self.log_file),
                "-o", f"-k {self.socket_dir} -p {self.port}",
            ]
        )
        for _ in range(100):
            if self.is_running():
                return
            time.sleep(0.1)
        raise ClusterError(f"PostgreSQL did not start; see {self.log_file}")

    def server_running(self) -> bool:
        """Whether a server process runs on the data folder (``pg_ctl status``), ready or not."""
        if not (self.data_dir / "postmaster.pid").exists():
            return False
        argv = [str(PG_BIN / "pg_ctl"), "status", "-D", str(self.data_dir)]
        if os.geteuid() == 0:
            argv = ["runuser", "-u", self.user, "--", *argv]
        return subprocess.run(argv, capture_output=True).returncode == 0

    def stop(self) -> bool:
        """Stop the server if it runs (fast shutdown: open sessions are ended); whether it ran."""
        if not self.server_running():
            return False
        self._as_owner([str(PG_BIN / "pg_ctl"), "stop", "-m", "fast", "-D", str(self.data_dir)])
        return True

    def remove(self) -> bool:
        """Stop the server and delete the cluster's folder (every database in it); whether one existed.

        Refuses (ClusterError) a folder holding anything but a cluster's data, socket folder and log,
        so that a mistaken ``GRIDATLAS_VAR`` cannot delete someone's files. Also removes the socket
        folder under /tmp (long project paths) and an emptied ``/var/tmp/gridatlas-<hash>``.
        """
        if not self.root.exists():
            self._remove_socket_dir()
            return False
        unknown = sorted(entry.name for entry in self.root.iterdir() if entry.name not in _CLUSTER_ENTRIES)
        if unknown:
            raise ClusterError(f"{self.root} holds files that are not the cluster's ({', '.join(unknown[:5])}); "
                               "not removing it")
        self.stop()
        shutil.rmtree(self.root)
        self._remove_socket_dir()
        parent = self.root.parent
        if parent.parent == Path("/var/tmp") and parent.name.startswith("gridatlas-"):
            try:
                parent.rmdir()
            except OSError:
                pass  # not empty: something else lives there too
        return True

    def _remove_socket_dir(self) -> None:
        sockets = self.socket_dir
        if sockets.parent == Path("/tmp") and sockets.exists():
            shutil.rmtree(sockets, ignore_errors=True)

    def create_database(self, name: str, *, drop_first: bool = False) -> None:
        """Create database ``name`` with the postgis and pg_trgm extensions, if it is missing."""
        psql = [str(PG_BIN.parent / "bin" / "psql"), "-h", str(self.socket_dir), "-p", str(self.port),
                "-U", self.user, "-v", "ON_ERROR_STOP=1", "-qAt"]
        if not Path(psql[0]).exists():
            psql[0] = shutil.which("psql") or "psql"
        if drop_first:
            self._as_owner(psql + ["-d", "postgres", "-c", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'])
        exists = self._as_owner(
            psql + ["-d", "postgres", "-c", f"SELECT 1 FROM pg_database WHERE datname = '{name}'"]
        ).stdout.strip()
        if not exists:
            self._as_owner(psql + ["-d", "postgres", "-c", f'CREATE DATABASE "{name}"'])
        self._as_owner(
            psql + ["-d", name, "-c",
                    "CREATE EXTENSION IF NOT EXISTS postgis; CREATE EXTENSION IF NOT EXISTS pg_trgm"]
        )

    # -- internals ----------------------------------------------------------------------------
    @staticmethod
    def _run_user() -> str:
        """The account that owns the cluster: ourselves, or ``postgres`` when we are root."""
        if os.geteuid() != 0:
            return pwd.getpwuid(os.geteuid()).pw_name
        return "postgres"

    def _as_owner(self, argv: list[str]) -> subprocess.CompletedProcess:
        if os.geteuid() == 0:
            argv = ["runuser", "-u", self.user, "--", *argv]
        result = subprocess.run(argv, capture_output=True, text=True)
        if result.returncode != 0:
            raise ClusterError(f"{' '.join(argv)} failed:\n{result.stderr.strip() or result.stdout.strip()}")
        return result

    def _ensure_postgis_installed(self) -> None:
        if (PG_BIN / "initdb").exists() and POSTGIS_CONTROL.exists():
            if os.geteuid() == 0:
                self._ensure_root_user()
            return
        if not shutil.which("apt-get"):
            raise ClusterError(
                f"PostgreSQL {PG_VERSION} with PostGIS 3 is not installed and this system has no apt-get. "
                "Install PostgreSQL 15 and PostGIS 3, or set DATABASE_URL to a PostGIS database."
            )
        is_root = os.geteuid() == 0
        if _disable_main_cluster(is_root):
            _log(f"wrote {CREATECLUSTER_CONF}: Debian's packages create no cluster of their own")
        _log(f"installing {POSTGIS_PACKAGE} with apt-get, without recommended packages (once)")
        for argv in postgis_install_commands(is_root):
            if subprocess.run(argv).returncode != 0:
                raise ClusterError(
                    f"could not install {POSTGIS_PACKAGE}; install it yourself or set DATABASE_URL"
                )
        if is_root:
            self._ensure_root_user()

    def _ensure_root_user(self) -> None:
        try:
            pwd.getpwnam(self.user)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", self.user], check=True)

    def _owner_can_reach(self, path: Path) -> bool:
        if os.geteuid() != 0:
            return True
        probe = subprocess.run(["runuser", "-u", self.user, "--", "test", "-x", str(path)])
        return probe.returncode == 0

    def _initdb(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, self.user)
        if not self._owner_can_reach(self.root):
            raise ClusterError(
                f"the user {self.user!r} cannot reach {self.root}: a parent folder is private. "
                "Clone the project into a folder other users can traverse, or set DATABASE_URL."
            )
        _log(f"creating a PostgreSQL {PG_VERSION} cluster in {self.data_dir}")
        self._as_owner(
            [str(PG_BIN / "initdb"), "-D", str(self.data_dir), "-U", self.user, "-A", "trust",
             "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"]
        )
        settings = {
            "listen_addresses": "''",
            "max_connections": "200",
            "shared_buffers": "'512MB'",
            "work_mem": "'32MB'",
            "maintenance_work_mem": "'512MB'",
            "max_wal_size": "'4GB'",
            "synchronous_commit": "off",
            "unix_socket_permissions": "0777",
        }
        with open(self.data_dir / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write("\n# GridAtlas embedded cluster\n")
            for key, value in settings.items():
                conf.write(f"{key} = {value}\n")

    def _prepare_socket_dir(self) -> None:
        sockets = self.socket_dir
        sockets.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(sockets, self.user)
        sockets.chmod(0o755)
        log = self.log_file
        if os.geteuid() == 0 and log.exists():
            shutil.chown(log, self.user)


def postgis_install_commands(is_root: bool) -> list[list[str]]:
    """The argv lists that install PostGIS: apt-get update, then install without recommends.

    The environment goes through ``env`` because sudo resets it. UCF_FORCE_CONFFOLD keeps a
    createcluster.conf written by :func:`_disable_main_cluster` when postgresql-common's ucf
    would otherwise ask whether to replace it.
    """
    prefix = ([] if is_root else ["sudo"]) + ["env", "DEBIAN_FRONTEND=noninteractive", "UCF_FORCE_CONFFOLD=1"]
    return [
        prefix + ["apt-get", "update", "-qq"],
        prefix + ["apt-get", "install", "-y", "-qq", "--no-install-recommends", POSTGIS_PACKAGE],
    ]


def _disable_main_cluster(is_root: bool, conf: Path = CREATECLUSTER_CONF) -> bool:
    """Write ``create_main_cluster = false`` to ``conf`` unless it exists; whether it was written.

    Called before PostgreSQL is installed. A machine that has a createcluster.conf already has
    PostgreSQL set up by someone: it is left as it is.
    """
    if conf.exists():
        return False
    if is_root:
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(CREATECLUSTER_CONF_TEXT, encoding="utf-8")
        conf.chmod(0o644)
        return True
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".conf", encoding="utf-8") as draft:
        draft.write(CREATECLUSTER_CONF_TEXT)
        draft.flush()
        result = subprocess.run(["sudo", "install", "-D", "-m", "644", draft.name, str(conf)])
    if result.returncode != 0:
        raise ClusterError(f"could not write {conf}")
    return True


def _others_can_traverse(path: Path) -> bool:
    """Whether every existing ancestor of ``path`` lets other users through (mode o+x)."""
    for folder in [path, *path.parents]:
        if folder.exists():
            if not folder.stat().st_mode & stat.S_IXOTH:
                return False
    return True


def cluster_root(project_root: Path | None = None, *, as_root: bool | None = None) -> Path:
    """The folder of the project's cluster: ``<var>/postgres``, ``<var>`` being ``GRIDATLAS_VAR``
    or ``<project>/var``.

    As root (``as_root``, default: whether we are), the cluster runs as ``postgres``, which
    cannot enter a private folder such as /root; a project there keeps its cluster under
    ``/var/tmp/gridatlas-<first 12 hex digits of sha1(var path)>/postgres`` instead, one per path.
    """
    root = (project_root or Path(__file__).resolve().parent.parent).resolve()
    var = Path(os.environ.get("GRIDATLAS_VAR") or root / "var").resolve()
    if as_root is None:
        as_root = os.geteuid() == 0
    if as_root and not _others_can_traverse(var):
        digest = hashlib.sha1(str(var).encode()).hexdigest()[:12]
        var = Path("/var/tmp") / f"gridatlas-{digest}"
    return var / "postgres"


def default_cluster(project_root: Path | None = None) -> Cluster:
    """The project's cluster, in :func:`cluster_root`."""
    return Cluster(cluster_root(project_root))


def main(argv: list[str] | None = None) -> int:
    """``python -m geo.cluster where|stop|remove``: the project's cluster from the shell."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in ("where", "stop", "remove"):
        print("usage: python -m geo.cluster where|stop|remove", file=sys.stderr)
        return 2
    cluster = default_cluster()
    try:
        if args[0] == "where":
            print(cluster.root)
        elif args[0] == "stop":
            if cluster.stop():
                print(f"stopped the cluster in {cluster.root}")
            else:
                print(f"no cluster running in {cluster.root}")
        elif cluster.remove():
            print(f"removed the cluster in {cluster.root}")
        else:
            print(f"no cluster in {cluster.root}")
    except ClusterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
