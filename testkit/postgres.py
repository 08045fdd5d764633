"""A real PostgreSQL server for the tests, from the Debian packages (`apt-get install
postgresql`; `.ci/run` installs it).

- ``postgres`` (session): initdb + pg_ctl from ``/usr/lib/postgresql/*/bin`` in a temp
  directory, listening on 127.0.0.1 only, on a free port, password auth over TCP. Postgres
  refuses to run as root, so as root the server runs as the ``postgres`` system user
  (``runuser -u postgres --``) in a directory chowned to it. Stopped and removed at the end.
  Skips, saying so, only when the binaries are not installed.
- ``pg_database`` (function): a fresh database per test, ``CREATE DATABASE ... TEMPLATE`` of
  one that already holds Dagster's schema (~0.1 s instead of ~2 s of table creation);
  dropped after the test.
- ``postgres_instance`` (function): a ``dg.DagsterInstance`` over such a database, with the
  production config (``deploy/dagster.postgres.yaml``) written to a temp DAGSTER_HOME.
- ``write_postgres_home(home, db)`` writes that ``dagster.yaml`` for any other scenario.

Use them from any test module by name (``tests/conftest.py`` re-exports them)."""

from __future__ import annotations

import copy
import glob
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from testkit.servers import free_port

ROOT = Path(__file__).resolve().parents[1]
DEPLOY_YAML = ROOT / "deploy" / "dagster.postgres.yaml"
SUPERUSER = "dagster"
# what deploy/README.md exports for the Postgres deployment beside DAGSTER_PG_*: the tests that
# run it in other processes (crash, overlap, the README itself) give them the same
DEPLOY_ENV = {"DAGSTER_EVENT_BATCH_SIZE": "1000"}
TEMPLATE_DB = "dagster_template"


def pg_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<major>/bin`` holding initdb and pg_ctl (or $PG_BINDIR)."""
    candidates = [os.environ["PG_BINDIR"]] if os.environ.get("PG_BINDIR") else []
    candidates += sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(re.sub(r"\D", "", Path(p).parent.name) or 0), reverse=True
    )
    for c in candidates:
        if (Path(c) / "initdb").exists() and (Path(c) / "pg_ctl").exists():
            return Path(c)
    return None


@dataclass
class PgDatabase:
    """Connection settings of one database; ``env`` is what deploy/dagster.postgres.yaml reads."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    dbname: str

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{self.dbname}"

    @property
    def env(self) -> dict[str, str]:
        return {
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_USER": self.user,
            "DAGSTER_PG_PASSWORD": self.password,
            "DAGSTER_PG_DB": self.dbname,
        }

    @property
    def postgres_db_config(self) -> dict:
        """The ``storage: postgres: postgres_db:`` block, with literal values."""
        return {"hostname": self.host, "port": self.port, "username": self.user, "password": self.password, "db_name": self.dbname}

    def connect(self):
        import psycopg2

        return psycopg2.connect(
            host=self.host, port=self.port, user=self.user, password=self.password, dbname=self.dbname, connect_timeout=10
        )

    def query(self, sql: str, args=()) -> list[tuple]:
        conn = self.connect()
        try:
            with conn, conn.cursor() as cur:
                cur.execute(sql, args)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()


class PgServer:
    """One postmaster in a temp directory; see the module docstring."""

    def __init__(self, bindir: Path):
        self.bindir = bindir
        self.host = "127.0.0.1"
        self.port = 0
        self.password = secrets.token_hex(16)
        self.dir = Path(tempfile.mkdtemp(prefix="hybrid-audio-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self.as_root = os.geteuid() == 0
        self.startup_s = 0.0
        self.template_s = 0.0
        self._template_ready = False

    # -- process plumbing -----------------------------------------------------------------
    def _cmd(self, *args: str) -> list[str]:
        return (["runuser", "-u", "postgres", "--"] if self.as_root else []) + list(args)

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(self._cmd(*args), capture_output=True, text=True, timeout=timeout, cwd=self.dir, stdin=subprocess.DEVNULL)

    def _log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def start(self) -> None:
        t0 = time.monotonic()
        if self.as_root:
            import pwd

            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("running as root but there is no 'postgres' system user (the Debian package creates it)") from None
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        pwfile = self.dir / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self.as_root:
            os.chown(pwfile, pw.pw_uid, pw.pw_gid)
        pwfile.chmod(0o600)
        r = self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        )
        pwfile.unlink()
        if r.returncode != 0:
            raise RuntimeError(f"initdb failed ({r.returncode}): {r.stderr[-2000:]}")
        last = ""
        for _ in range(3):  # a free port can be taken between choosing it and binding it
            self.port = free_port()
            opts = (
                f"-c listen_addresses={self.host} -p {self.port} -c unix_socket_directories={self.data} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 "
                "-c shared_buffers=64MB"
            )
            r = self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "-o", opts, "start")
            if r.returncode == 0:
                break
            last = r.stderr + r.stdout + self._log_tail()
        else:
            raise RuntimeError(f"pg_ctl start failed: {last[-2000:]}")
        self.startup_s = time.monotonic() - t0

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                r = self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop", timeout=60)
                if r.returncode != 0:
                    self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "-t", "30", "stop", timeout=60)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- databases --------------------------------------------------------------------------
    def database(self, dbname: str = "postgres") -> PgDatabase:
        return PgDatabase(self.host, self.port, SUPERUSER, self.password, dbname)

    def _admin(self, *statements: str) -> None:
        conn = self.database("postgres").connect()
        try:
            conn.autocommit = True  # CREATE/DROP DATABASE cannot run in a transaction
            with conn.cursor() as cur:
                for s in statements:
                    cur.execute(s)
        finally:
            conn.close()

    def _ensure_template(self) -> None:
        """A database with Dagster's tables already created, copied by every create_database."""
        if self._template_ready:
            return
        import dagster as dg

        t0 = time.monotonic()
        self._admin(f'CREATE DATABASE "{TEMPLATE_DB}"')
        with tempfile.TemporaryDirectory(prefix="hybrid-audio-pg-home-") as home:
            write_postgres_home(Path(home), self.database(TEMPLATE_DB))
            with dg.DagsterInstance.from_config(home) as instance:
                instance.get_runs(limit=1)  # storage initialised: every table created and stamped
        self.template_s = time.monotonic() - t0
        self._template_ready = True

    def create_database(self, dbname: str | None = None, *, with_dagster_schema: bool = True) -> PgDatabase:
        dbname = dbname or f"t_{uuid.uuid4().hex[:12]}"
        if with_dagster_schema:
            self._ensure_template()
            self._admin(f'CREATE DATABASE "{dbname}" TEMPLATE "{TEMPLATE_DB}" STRATEGY FILE_COPY')
        else:
            self._admin(f'CREATE DATABASE "{dbname}"')
        return self.database(dbname)

    def drop_database(self, dbname: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def write_postgres_home(home: Path, db: PgDatabase, *, base: Path = DEPLOY_YAML, overrides: dict | None = None) -> Path:
    """Write ``home/dagster.yaml``: the production config ``base`` with the connection settings
    of ``db`` as literal values (so no DAGSTER_PG_* variable is needed in this process), then
    ``overrides`` merged key by key (e.g. ``{"run_monitoring": {"poll_interval_seconds": 1}}``).
    Returns ``home``; ``dg.DagsterInstance.from_config(str(home))`` opens it."""
    config = yaml.safe_load(base.read_text())
    pg = config.setdefault("storage", {}).setdefault("postgres", {})
    pg.pop("postgres_url", None)
    pg["postgres_db"] = {**(pg.get("postgres_db") or {}), **db.postgres_db_config}  # keeps e.g. scheme

    def merge(into: dict, extra: dict) -> None:
        for k, v in extra.items():
            if isinstance(v, dict) and isinstance(into.get(k), dict):
                merge(into[k], v)
            else:
                into[k] = copy.deepcopy(v)

    merge(config, overrides or {})
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return home


# -- fixtures -------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def postgres():
    bindir = pg_bindir()
    if bindir is None:
        pytest.skip(
            "PostgreSQL server binaries not installed (no /usr/lib/postgresql/*/bin/initdb): "
            "apt-get install -y postgresql (.ci/run does it)"
        )
    server = PgServer(bindir)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_database(postgres):
    db = postgres.create_database()
    try:
        yield db
    finally:
        postgres.drop_database(db.dbname)


@pytest.fixture
def postgres_instance(pg_database, tmp_path):
    import dagster as dg

    home = write_postgres_home(tmp_path / "dagster_home", pg_database)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield instance
