"""Real servers on 127.0.0.1 for the tests: a moto server (AWS over HTTP) and PostgreSQL.

Both run as separate processes so a test can stop one mid-load and start it again, which is
what the capture and replay tests need: an outage that looks to the client like a real one.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll ``predicate`` until true; a readiness wait, not a sleep standing in for one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"{what} not ready after {timeout}s")


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((LOOPBACK, port)) == 0


@dataclass
class MotoServer:
    """``moto_server`` in a subprocess. ``stop()``/``start()`` keep the port, so clients reconnect.

    State lives in the process: a restart starts empty, as a real outage of a fresh endpoint would.
    Use ``reset()`` between tests instead of restarting.
    """

    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._healthy, 30, f"moto server on {self.endpoint_url}")

    def _healthy(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"moto server exited with {self.process.returncode}")
        try:
            with urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=1):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.process = None
        wait_until(lambda: not _port_open(self.port), 10, "moto server port release")

    def reset(self) -> None:
        """Drop all state (buckets, queues, ...) without restarting."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass


def _postgres_bin() -> Path:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    if not candidates:
        raise RuntimeError(
            "PostgreSQL server binaries not found under /usr/lib/postgresql; install Debian's "
            "'postgresql' package (.ci/run does)"
        )
    return candidates[0].parent


@dataclass
class PostgresServer:
    """A throwaway PostgreSQL cluster on loopback with trust auth, run as the ``postgres`` user when root.

    Debian's server refuses to run as root, and CI runs as root, hence ``runuser``.
    """

    port: int = field(default_factory=free_port)
    data_dir: Path | None = None
    _base: Path | None = None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@{LOOPBACK}:{self.port}/postgres"

    def _as_server_user(self, argv: list[str]) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *argv]
        return argv

    def init(self) -> None:
        self._base = Path(tempfile.mkdtemp(prefix="ml-delivery-pg-"))
        self.data_dir = self._base / "data"
        self.data_dir.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self._base, "postgres", "postgres")
            shutil.chown(self.data_dir, "postgres", "postgres")
        bin_dir = _postgres_bin()
        subprocess.run(
            self._as_server_user(
                [str(bin_dir / "initdb"), "-D", str(self.data_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8"]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def start(self) -> None:
        if self.data_dir is None:
            self.init()
        assert self.data_dir is not None and self._base is not None
        bin_dir = _postgres_bin()
        options = f"-h {LOOPBACK} -p {self.port} -k {self._base} -c fsync=off -c max_connections=200"
        log_file = str(self._base / "log")
        pg_ctl = str(bin_dir / "pg_ctl")
        subprocess.run(
            self._as_server_user([pg_ctl, "-D", str(self.data_dir), "-o", options, "-l", log_file, "-w", "start"]),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        wait_until(lambda: _port_open(self.port), 30, "postgres")

    def stop(self, mode: str = "fast") -> None:
        assert self.data_dir is not None
        subprocess.run(
            self._as_server_user([str(_postgres_bin() / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop"]),
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: not _port_open(self.port), 30, "postgres shutdown")

    def destroy(self) -> None:
        if self.data_dir is not None and _port_open(self.port):
            self.stop("immediate")
        if self._base is not None:
            shutil.rmtree(self._base, ignore_errors=True)


@dataclass
class MariaDbServer:
    """A throwaway MariaDB (Debian's ``mariadb-server``) on loopback, for the MySQL capture path.

    Like PostgreSQL it is run as its own system user when the suite runs as root (CI does), and it
    keeps its data between ``stop()`` and ``start()`` so an outage test sees the rows written before.
    """

    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    _base: Path | None = None

    @property
    def url(self) -> str:
        return f"mysql+pymysql://capture:capture@{LOOPBACK}:{self.port}/capture"

    @property
    def _socket(self) -> Path:
        assert self._base is not None
        return self._base / "mysqld.sock"

    def _init(self) -> None:
        if shutil.which("mariadbd", path="/usr/sbin:/usr/bin") is None:
            raise RuntimeError("MariaDB server not found; install Debian's 'mariadb-server' package (.ci/run does)")
        self._base = Path(tempfile.mkdtemp(prefix="ml-delivery-mariadb-"))
        (self._base / "data").mkdir()
        if os.geteuid() == 0:
            for path in (self._base, self._base / "data"):
                shutil.chown(path, "mysql", "mysql")
        user = ["--user=mysql"] if os.geteuid() == 0 else []
        subprocess.run(
            ["mariadb-install-db", "--no-defaults", *user, f"--datadir={self._base / 'data'}",
             "--auth-root-authentication-method=normal", "--skip-test-db"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip

    def start(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        first_start = self._base is None
        if first_start:
            self._init()
        assert self._base is not None
        user = ["--user=mysql"] if os.geteuid() == 0 else []
        self.process = subprocess.Popen(
            ["/usr/sbin/mariadbd", "--no-defaults", *user, f"--datadir={self._base / 'data'}",
             f"--port={self.port}", f"--bind-address={LOOPBACK}", f"--socket={self._socket}",
             f"--pid-file={self._base / 'mysqld.pid'}", "--skip-name-resolve", "--skip-log-bin",
             "--innodb-buffer-pool-size=32M", "--max-connections=200"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until(lambda: _port_open(self.port) and self._socket.exists(), 60, "mariadb")
        if first_start:
            import pymysql

            admin = pymysql.connect(unix_socket=str(self._socket), user="root", autocommit=True)
            with admin.cursor() as cursor:
                cursor.execute("CREATE DATABASE capture")
                cursor.execute("CREATE USER 'capture'@'%' IDENTIFIED BY 'capture'")
                cursor.execute("GRANT ALL ON capture.* TO 'capture'@'%'")
            admin.close()

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.process = None
        wait_until(lambda: not _port_open(self.port), 30, "mariadb shutdown")

    def destroy(self) -> None:
        self.stop()
        if self._base is not None:
            shutil.rmtree(self._base, ignore_errors=True)
