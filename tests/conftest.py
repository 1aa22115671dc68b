from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import models


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


LOOPBACK_HOOKS = '["http://127.0.0.1"]'
OURS = (
    "sluice.cli.main",
    "sluice.workers.main",
    "sluice.workers.zygote",
    "sluice.monitor.job",
    "multiprocessing-fork",
    "bin/sluice ",
)
"""What the command lines of sluice's processes hold (servers, workers, checks, readers)."""


@pytest.fixture(scope="session", autouse=True)
def servers_may_use_the_test_folders(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Servers started by the tests read artifacts from, and write capture to, the tests'
    temporary folders (their own homes stay off limits, as any home does)."""
    import json

    os.environ["SLUICE_ALLOWED_ROOTS"] = json.dumps([str(tmp_path_factory.getbasetemp())])


def _ours_left_behind(started: float, before: set[str]) -> tuple[list[str], list[str]]:
    """The sluice processes started since `started` and our temporary folders not in `before`."""
    import psutil

    me = os.getpid()
    temp = Path(tempfile.gettempdir())
    processes = []
    for process in psutil.process_iter(["pid", "cmdline", "create_time"]):
        info = process.info
        command = " ".join(info["cmdline"] or ())
        if (info["pid"] != me and info["create_time"] >= started - 1
                and any(mark in command for mark in OURS)):  # fmt: skip
            processes.append(f"{info['pid']}: {command[:160]}")
    folders = sorted(name for name in _our_folders() - before if (temp / name).is_dir())
    return processes, folders


def _our_folders() -> set[str]:
    temp = Path(tempfile.gettempdir())
    return {p.name for p in temp.iterdir() if p.name.startswith(("sluice-", "sl-"))}


def pytest_sessionstart(session: pytest.Session) -> None:
    if not hasattr(session.config, "workerinput"):  # the run itself, not one of its workers
        session.config.stash[_BEFORE] = (time.time(), _our_folders())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After the whole run (all its workers): no sluice process and no temporary folder
    of ours remains (servers killed with -9 included: their workers die with them)."""
    if hasattr(session.config, "workerinput") or _BEFORE not in session.config.stash:
        return
    started, before = session.config.stash[_BEFORE]
    deadline = time.monotonic() + 15
    while True:
        processes, folders = _ours_left_behind(started, before)
        if (not processes and not folders) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if processes or folders:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"sluice processes left running: {processes}", red=True)
            reporter.write_line(f"temporary folders left behind: {folders}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_BEFORE = pytest.StashKey[tuple[float, set[str]]]()


class RunningServer:
    """A real `sluice server` in a subprocess on a free port.

    Authentication is off (the server runs with --insecure-local, on loopback) unless
    `auth` is set; then `token` holds the admin token the server generated in its home.
    """

    def __init__(self, home: Path, env: dict[str, str] | None = None, auth: bool = False) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = home / "server.log"
        home.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sluice.cli.main",
                "server",
                "--port",
                str(self.port),
                "--home",
                str(home),
                *([] if auth else ["--insecure-local"]),
            ],
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Test receivers (webhooks) listen on loopback, which a server refuses unless listed.
            env={**os.environ, "SLUICE_WEBHOOK_DESTINATIONS": LOOPBACK_HOOKS, **(env or {})},
        )
        self.wait_ready()
        self.token: str | None = None
        if auth:
            from sluice.security.credentials import default_token

            self.token = default_token(home)

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log.read_text()}")
            try:
                httpx.get(f"{self.url}/healthz", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("server not ready")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Model artifacts shared by the whole run (built once)."""
    root = tmp_path_factory.mktemp("artifacts")
    logreg = models.write_sklearn(root / "logreg", models.digits_logreg())
    tree = models.write_sklearn(root / "tree", models.digits_tree())
    return {
        "logreg": logreg,
        "logreg_tar": models.tarball(logreg, root / "logreg.tar.gz"),
        "tree": tree,
        "crashing": models.write_handler(root / "crashing", models.CRASHING),
        "slow": models.write_handler(root / "slow", models.SLOW),
        "echo": models.write_handler(root / "echo", models.ECHO_VARIANT, with_model=False),
        "faulty": models.write_handler(root / "faulty", models.FAULTY, with_model=False),
    }


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    running = RunningServer(tmp_path / "home")
    yield running
    running.stop()


class S3Server:
    """A real S3-compatible HTTP server (moto's) on a free port, with a client for it."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        self.options = {"endpoint_url": self.url, "key": "test", "secret": "test"}
        """Storage options for fsspec's s3fs (what SLUICE_S3 holds)."""

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    running = S3Server()
    yield running
    running.server.stop()


class PostgresServer:
    """A throwaway PostgreSQL cluster of its own (initdb in a temporary directory).

    Run as the `postgres` user when the tests run as root (PostgreSQL refuses root).
    """

    def __init__(self) -> None:
        binaries = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        found = shutil.which("initdb") or (str(binaries[-1]) if binaries else None)
        if found is None:
            pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
        bin_dir = Path(found).parent
        self.root = Path(tempfile.mkdtemp(prefix="sluice-pg-"))
        prefix: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            prefix = ["runuser", "-u", "postgres", "--"]
        data = self.root / "data"
        subprocess.run(
            [*prefix, str(bin_dir / "initdb"), "-D", str(data), "-U", "sluice",
             "--auth=trust", "-E", "UTF8", "--no-sync"],
            check=True, capture_output=True,
        )  # fmt: skip
        self.port = free_port()
        self.process = subprocess.Popen(
            [*prefix, str(bin_dir / "postgres"), "-D", str(data), "-p", str(self.port),
             "-k", str(self.root), "-h", "127.0.0.1", "-F"],
            stdout=subprocess.DEVNULL, stderr=(self.root / "log").open("wb"),
        )  # fmt: skip
        self.admin = f"postgresql+psycopg://sluice@127.0.0.1:{self.port}/postgres"
        self.count = 0
        deadline = time.monotonic() + 30
        while True:
            try:
                self.execute("SELECT 1")
                return
            except Exception:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise
                time.sleep(0.1)

    def execute(self, statement: str) -> None:
        import sqlalchemy

        engine = sqlalchemy.create_engine(self.admin, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                connection.execute(sqlalchemy.text(statement))
        finally:
            engine.dispose()

    def new_database(self) -> str:
        """The URL of a new, empty database."""
        self.count += 1
        name = f"sluice_{self.count}"
        self.execute(f"CREATE DATABASE {name}")
        return self.admin.rsplit("/", 1)[0] + f"/{name}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)
        shutil.rmtree(self.root, ignore_errors=True)


def database_env(database: str, request: pytest.FixtureRequest) -> dict[str, str]:
    """A server's environment for `database`: sqlite (its default) or postgresql (a new,
    empty database on the session's cluster)."""
    if database == "sqlite":
        return {}
    return {"SLUICE_DATABASE_URL": request.getfixturevalue("postgres").new_database()}


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    running = PostgresServer()
    yield running
    running.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """An empty store of sluice's tables, on SQLite and on the session's PostgreSQL."""
    from sluice.store.db import open_database

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'sluice.db'}"
    else:
        url = request.getfixturevalue("postgres").new_database()
    opened = open_database(url)
    yield opened
    opened.close()
