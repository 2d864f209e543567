"""The run store: one SQLite file of run records (``fleetforge.runs.models``), appended to by
every deploy, verify, rollout, tune, probe and plan, read by ``fleetforge report``.

Where: ``--record PATH``, else the environment variable ``FLEETFORGE_RUN_STORE`` (a path, or
``off``: no record), else ``fleetforge-runs.sqlite`` in the inventory file's directory
(``default_path``). ``--no-record`` turns recording off for one command.

The file is created mode 0600 (SQLite gives its ``-wal`` and ``-shm`` files the same mode),
never through a symbolic link; a store path that is a symbolic link, or a file of another user,
is refused (``RunStoreError``). It is used in WAL mode with a busy timeout, so several processes
may write at once (a rollout, a timer-driven ``fleetforge verify --record``); every write is one
short ``BEGIN IMMEDIATE`` transaction. Schema (version ``SCHEMA_VERSION``, kept in table ``schema_version``)::

    runs(id INTEGER PRIMARY KEY AUTOINCREMENT, command TEXT, started_at TEXT, ended_at TEXT,
         user TEXT, inventory TEXT, target TEXT, exit_code INTEGER, dry INTEGER,
         waves TEXT, hosts TEXT, phases TEXT)

Times are ISO 8601 UTC text with microseconds (``2024-05-01T10:00:00.000000+00:00``, so text
order is time order); ``waves``, ``hosts`` and ``phases`` are JSON text of the models' lists,
validated by the pydantic models when read: a row that does not validate is skipped with a
``RunStoreWarning``. ``exit_code`` is NULL until the run finishes: a killed run stays so.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import sqlite3
import stat
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

from pydantic import TypeAdapter

from fleetforge.errors import FleetforgeError
from fleetforge.runs.models import HostRecord, Phase, RunRecord

SCHEMA_VERSION = 1
ENV = "FLEETFORGE_RUN_STORE"
OFF = "off"
FILE_NAME = "fleetforge-runs.sqlite"
BUSY_TIMEOUT_S = 30.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    command TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    user TEXT NOT NULL,
    inventory TEXT NOT NULL,
    target TEXT NOT NULL DEFAULT '',
    exit_code INTEGER,
    dry INTEGER NOT NULL DEFAULT 0,
    waves TEXT NOT NULL DEFAULT '[]',
    hosts TEXT NOT NULL DEFAULT '[]',
    phases TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS runs_by_start ON runs (started_at, id);
CREATE INDEX IF NOT EXISTS runs_by_command ON runs (command, started_at, id);
"""
_COLUMNS = "id, command, started_at, ended_at, user, inventory, target, exit_code, dry, waves, hosts, phases"


class RunStoreError(FleetforgeError):
    """The store cannot be opened or written: not a SQLite file, a newer schema, no such run."""


class RunStoreWarning(UserWarning):
    """A stored run that does not validate (skipped when reading)."""


def _ts(value: dt.datetime | None) -> str | None:
    """ISO 8601 UTC text with microseconds; a naive datetime is taken as UTC."""
    if value is None:
        return None
    value = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    return value.isoformat(timespec="microseconds")


_HOSTS = TypeAdapter(list[HostRecord])
_PHASES = TypeAdapter(list[Phase])


def _json_list(adapter: TypeAdapter, items: Sequence) -> str:
    """``items`` as JSON text, serialized by pydantic-core in one pass (a 500-host run: ms)."""
    return adapter.dump_json(list(items)).decode()


class RunStore:
    """The SQLite run store at ``path`` (see the module docstring).

    Opening creates the file (mode 0600, parent directories 0700) and the schema when missing.
    Raises ``RunStoreError`` when ``path`` is not a run store of this or an older schema
    version, or is a symbolic link or not a regular file of this user, ``OSError``/``sqlite3.Error``
    when it cannot be created or read.
    """

    def __init__(self, path: str | os.PathLike, *, read_only: bool = False) -> None:
        """Open the store at ``path``, creating it (and its schema) unless ``read_only``: then
        an existing store is only read (``fleetforge report``), never changed, and a file that
        is not a store raises ``RunStoreError``, as a missing one does."""
        self.path, self.read_only = Path(path), read_only
        if read_only:
            self._check_read_only()
            return
        _own_file(self.path)
        try:
            with self._connect() as conn:
                conn.execute("PRAGMA journal_mode=WAL")
                with _write(conn):
                    for statement in _SCHEMA.split(";"):  # not executescript: it would commit first
                        if statement.strip():
                            conn.execute(statement)
                    row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
                    if row[0] is None:
                        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
                    elif row[0] > SCHEMA_VERSION:
                        raise RunStoreError(
                            f"{self.path}: run store schema version {row[0]} is newer than this fleetforge's "
                            f"({SCHEMA_VERSION})"
                        )
        except sqlite3.DatabaseError as exc:
            raise RunStoreError(f"{self.path}: not a fleetforge run store: {exc}") from None

    def _check_read_only(self) -> None:
        try:
            with self._connect() as conn:
                row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
        except sqlite3.DatabaseError as exc:  # no such table, not a database, no such file
            raise RunStoreError(f"{self.path}: not a fleetforge run store: {exc}") from None
        if row[0] is None or row[0] > SCHEMA_VERSION:
            version = f"run store schema version {row[0]}, this fleetforge reads {SCHEMA_VERSION}"
            raise RunStoreError(f"{self.path}: {version}")

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A new connection (autocommit; transactions are explicit), closed after use; with
        ``read_only``, SQLite's ``mode=ro`` (no write, no file created)."""
        if self.read_only:
            uri = f"{self.path.resolve().as_uri()}?mode=ro"
            conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        else:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            yield conn
        finally:
            conn.close()

    def begin(self, record: RunRecord) -> int:
        """Insert ``record`` as a run not finished yet (``exit_code`` NULL, whatever the record
        says); returns its id."""
        values = (
            record.command, _ts(record.started_at), _ts(record.ended_at), record.user, record.inventory,
            record.target, int(record.dry), json.dumps(record.waves), _json_list(_HOSTS, record.hosts),
            _json_list(_PHASES, record.phases),
        )  # fmt: skip
        with self._connect() as conn, _write(conn):
            cursor = conn.execute(
                "INSERT INTO runs (command, started_at, ended_at, user, inventory, target, exit_code, dry,"
                " waves, hosts, phases) VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?)",
                values,
            )
            return int(cursor.lastrowid or 0)

    def finish(
        self,
        run_id: int,
        *,
        ended_at: dt.datetime,
        exit_code: int,
        hosts: list[HostRecord],
        phases: list[Phase],
    ) -> None:
        """Complete run ``run_id``: its end, exit code, hosts and phases (replacing those given to
        ``begin``). Raises ``RunStoreError`` when there is no such run."""
        with self._connect() as conn, _write(conn):
            cursor = conn.execute(
                "UPDATE runs SET ended_at = ?, exit_code = ?, hosts = ?, phases = ? WHERE id = ?",
                (_ts(ended_at), int(exit_code), _json_list(_HOSTS, hosts), _json_list(_PHASES, phases), run_id),
            )
            if cursor.rowcount != 1:
                raise RunStoreError(f"{self.path}: no run {run_id}")

    def runs(self, *, command: str | None = None, limit: int | None = None) -> list[RunRecord]:
        """Stored runs, oldest first (by start, then id); ``command``: only that command's;
        ``limit``: only the newest ``limit`` rows (a row skipped as invalid still counts)."""
        where, params = ("WHERE command = ?", [command]) if command is not None else ("", [])
        order = "DESC" if limit is not None else "ASC"
        sql = f"SELECT {_COLUMNS} FROM runs {where} ORDER BY started_at {order}, id {order}"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(max(0, int(limit)))
        with self._connect() as conn:
            rows = conn.execute(sql, params).fetchall()
        if limit is not None:
            rows.reverse()
        return [record for row in rows if (record := self._record(row)) is not None]

    def _record(self, row: tuple) -> RunRecord | None:
        """One row as a ``RunRecord``; ``None`` (and a ``RunStoreWarning``) when it does not validate."""
        names = _COLUMNS.split(", ")
        data = dict(zip(names, row, strict=True))
        try:
            for key in ("waves", "hosts", "phases"):
                data[key] = json.loads(data[key])
            data["dry"] = bool(data["dry"])
            return RunRecord.model_validate(data)
        except (ValueError, TypeError, RecursionError) as exc:  # pydantic's ValidationError and JSON errors
            # are ValueErrors; JSON nested deeper than Python decodes is a RecursionError
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            warnings.warn(f"{self.path}: run {data.get('id')} skipped: {first}", RunStoreWarning, stacklevel=3)
            return None


def _own_file(path: Path) -> None:
    """Create ``path`` (mode 0600 from the first byte, parent directories 0700) unless it exists;
    raise ``RunStoreError`` unless it is then a regular file of this user. Never through a
    symbolic link: one planted where the store goes (a shared directory) would have the records
    written to, or a file created at, whatever it points to; another user's file would get this
    user's records, and SQLite would run that user's schema (triggers) on each write."""
    if not os.path.lexists(path):
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        with contextlib.suppress(FileExistsError):  # made meanwhile: checked below like any other
            os.close(os.open(path, flags, 0o600))
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        raise RunStoreError(f"{path}: a symbolic link; expected the run store itself (give its real path)")
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
        raise RunStoreError(f"{path}: expected a regular file owned by this user (uid {os.getuid()}) as the run store")


@contextlib.contextmanager
def _write(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction, taking the write lock at its start (``BEGIN IMMEDIATE``: a busy
    store is waited for, never a deadlock between two readers upgrading)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def default_path(inventory: str | os.PathLike) -> Path:
    """``fleetforge-runs.sqlite`` in the directory of ``inventory`` (an inventory file's path;
    for an inventory that is no file, such as ``@local``, the current directory)."""
    return Path(os.path.abspath(os.fspath(inventory))).parent / FILE_NAME


def open_store(inventory: str | os.PathLike, record: str | None = None, disabled: bool = False) -> RunStore | None:
    """The store a command records to, or ``None`` when recording is off.

    ``disabled`` (``--no-record``): off. ``record``: a path (``--record PATH``), used whatever
    the environment says; ``""`` (a bare ``--record``): on even when ``FLEETFORGE_RUN_STORE`` is
    ``off``, at that variable's path if it holds one, else ``default_path(inventory)``.
    ``None``: ``FLEETFORGE_RUN_STORE`` (a path, or ``off``), else ``default_path(inventory)``.
    Raises what ``RunStore`` raises.
    """
    if disabled or (record is None and os.environ.get(ENV, "").strip().lower() == OFF):
        return None
    return RunStore(store_path(inventory, record))


def store_path(inventory: str | os.PathLike, given: str | None = None) -> Path:
    """Where the store of ``inventory`` is: ``given`` (a non-empty path), else
    ``FLEETFORGE_RUN_STORE`` unless it is empty or ``off``, else ``default_path(inventory)``."""
    env = os.environ.get(ENV, "").strip()
    return Path(given or (env if env and env.lower() != OFF else None) or default_path(inventory))
