"""A throwaway PgBouncer (the Debian package ``pgbouncer``) on 127.0.0.1 in front of a
:class:`testkit.postgres.PgServer`, for the ``partitions`` bench scenario's connection-pooling case.

``dagster-postgres`` opens a new connection for every storage operation (SQLAlchemy
``NullPool``), and with SCRAM authentication the connect dominates a name partition's
bookkeeping. PgBouncer keeps a few server connections open and authenticates clients with
``md5`` (cheap), logging in to the SCRAM-protected server itself with the plaintext password
in its ``auth_file``. ``pool_mode=transaction`` hands a server connection to a client for
one transaction only. PgBouncer refuses to run as root, so as root it runs as the
``postgres`` system user, from files in the server's directory (already chowned to it).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from testkit.postgres import SUPERUSER, PgDatabase, PgServer
from testkit.servers import free_port


def pgbouncer_binary() -> Path | None:
    """``pgbouncer`` on PATH or where the Debian package puts it, else ``None``."""
    found = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if os.access("/usr/sbin/pgbouncer", os.X_OK) else None)
    return Path(found) if found else None


class PgBouncer:
    def __init__(self, server: PgServer, binary: Path, *, pool_mode: str = "transaction", auth_type: str = "md5") -> None:
        self.server = server
        self.binary = binary
        self.pool_mode = pool_mode
        self.auth_type = auth_type
        self.dir = server.dir / f"pgbouncer-{pool_mode}-{auth_type}"
        self.host = "127.0.0.1"
        self.port = 0
        self.proc: subprocess.Popen | None = None

    def _files(self) -> Path:
        self.dir.mkdir(exist_ok=True)
        (self.dir / "userlist.txt").write_text(f'"{SUPERUSER}" "{self.server.password}"\n')
        (self.dir / "userlist.txt").chmod(0o600)
        ini = self.dir / "pgbouncer.ini"
        ini.write_text(
            "[databases]\n"
            f"* = host={self.server.host} port={self.server.port}\n\n"
            "[pgbouncer]\n"
            f"listen_addr = {self.host}\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = {self.auth_type}\nauth_file = {self.dir / 'userlist.txt'}\n"
            f"pool_mode = {self.pool_mode}\nmax_client_conn = 500\ndefault_pool_size = 20\n"
            "ignore_startup_parameters = extra_float_digits\n"
            f"logfile = {self.dir / 'pgbouncer.log'}\npidfile = {self.dir / 'pgbouncer.pid'}\n"
            "log_connections = 0\nlog_disconnections = 0\n"
        )
        if self.server.as_root:
            import pwd

            pw = pwd.getpwnam("postgres")
            for p in (self.dir, self.dir / "userlist.txt", ini):
                os.chown(p, pw.pw_uid, pw.pw_gid)
        return ini

    def start(self, timeout: float = 20.0) -> None:
        last = ""
        for _ in range(3):  # a free port can be taken between choosing it and binding it
            self.port = free_port()
            ini = self._files()
            user = {"user": "postgres", "group": "postgres", "extra_groups": []} if self.server.as_root else {}
            self.proc = subprocess.Popen(
                [str(self.binary), str(ini)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **user
            )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    with socket.create_connection((self.host, self.port), timeout=0.5):
                        return
                except OSError:
                    time.sleep(0.05)
            last = self._log_tail() or (self.proc.stderr.read() if self.proc.poll() is not None and self.proc.stderr else "")
            self.stop()
        raise RuntimeError(f"pgbouncer did not start: {last[-1500:]}")

    def _log_tail(self) -> str:
        try:
            return (self.dir / "pgbouncer.log").read_text(errors="replace")[-1500:]
        except OSError:
            return ""

    def database(self, dbname: str) -> PgDatabase:
        """The server's database ``dbname``, reached through this pooler."""
        return PgDatabase(self.host, self.port, SUPERUSER, self.server.password, dbname)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None
