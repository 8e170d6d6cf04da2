"""Real PostgreSQL and MariaDB servers from Debian's packages, started on loopback in a temporary
directory for the SQL guard's tests and stopped after them. Root cannot run either server's setup, so
when the tests run as root (CI) the servers run as the packages' own unprivileged user."""

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_user(name: str):
    """(preexec_fn, uid, gid) to run a server as ``name`` when we are root, else as ourselves."""
    if os.getuid() != 0:
        return None, os.getuid(), os.getgid()
    entry = pwd.getpwnam(name)

    def drop() -> None:
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)

    return drop, entry.pw_uid, entry.pw_gid


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def mariadb_bins() -> tuple[str, str] | None:
    install = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
    server = shutil.which("mariadbd") or (os.path.exists("/usr/sbin/mariadbd") and "/usr/sbin/mariadbd") or None
    return (install, server) if install and server else None


def _wait(port: int, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"server did not listen on {port}: {log.read_text()[-2000:]}")


def _workdir(uid: int, gid: int) -> Path:
    root = Path(tempfile.mkdtemp(prefix="relsafe-db-"))
    os.chown(root, uid, gid)
    return root


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)  # a fast shutdown for PostgreSQL; MariaDB also stops on it
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


@contextmanager
def _server(user: str, setup: Callable[[Path, str], list], serve: Callable[[Path, str, int], list], url: str):
    """Set up a data directory, start the server as ``user`` on a free loopback port, yield its URL
    (``url`` formatted with the port), then stop it and remove everything."""
    drop, uid, gid = _as_user(user)
    name = pwd.getpwuid(uid).pw_name
    root = _workdir(uid, gid)
    port = _free_port()
    log = root / "server.log"
    try:
        subprocess.run(setup(root, name), preexec_fn=drop, check=True, capture_output=True, cwd=root)
        with open(log, "w") as out:
            os.chown(log, uid, gid)
            proc = subprocess.Popen(
                serve(root, name, port), preexec_fn=drop, stdout=out, stderr=subprocess.STDOUT, cwd=root
            )
        try:
            _wait(port, proc, log)
            yield url.format(port=port)
        finally:
            _stop(proc)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def postgres_server():
    """A fresh PostgreSQL cluster (trust auth on loopback): a context manager yielding its SQLAlchemy URL."""
    bin_dir = postgres_bin()
    return _server(
        "postgres",
        lambda root, _: [
            bin_dir / "initdb",
            "-D",
            root / "data",
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        lambda root, _, port: [
            *(bin_dir / "postgres", "-D", root / "data", "-p", str(port), "-k", root),
            *("-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"),
        ],
        "postgresql+psycopg://postgres@127.0.0.1:{port}/postgres",
    )


def mariadb_server():
    """A fresh MariaDB server (no grant tables, loopback only): a context manager yielding its SQLAlchemy URL."""
    install, server = mariadb_bins()
    return _server(
        "mysql",
        lambda root, user: [
            *(install, "--no-defaults", f"--datadir={root / 'data'}", f"--user={user}"),
            *("--skip-test-db", "--auth-root-authentication-method=normal"),
        ],
        lambda root, user, port: [
            *(server, "--no-defaults", f"--datadir={root / 'data'}", f"--socket={root / 'sock'}", f"--port={port}"),
            *("--bind-address=127.0.0.1", "--skip-grant-tables", "--skip-name-resolve", f"--user={user}"),
            *(f"--pid-file={root / 'pid'}", "--innodb-buffer-pool-size=16M", "--skip-log-bin"),
        ],
        "mysql+pymysql://root@127.0.0.1:{port}/mysql",
    )
