"""Where a trial's data lives: a fresh SQLite file or a fresh PostgreSQL database per trial.

Every trial (one repetition of one scenario) gets an empty database of its own, so no trial
inherits another's rows, indexes or cache, and floor and vault never share a file. A trial may
instead start as a copy of a *template* place prepared once (untimed): its directory copied
and, on PostgreSQL, its database cloned (``CREATE DATABASE ... TEMPLATE``), so an expensive
fill is paid once per case rather than once per repetition while each trial still gets its
own copy to change.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError

__all__ = ["BACKENDS", "DEFAULT_PG_URL", "Backend", "TrialPlace", "open_backend"]

BACKENDS = ("sqlite", "postgres")
#: The local server over TCP (what the test suite uses).
TCP_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
#: The same server over its Unix socket: on loopback TCP, psycopg's pipelined inserts of 1000
#: records stall ~200 ms in one batch of two (floor and vault alike; bench/README.md,
#: "PostgreSQL at batch 1000"), which makes every ratio at that batch size noise.
SOCKET_PG_URL = "postgresql+psycopg://postgres@/test?host=/var/run/postgresql"
DEFAULT_PG_URL = SOCKET_PG_URL if Path("/var/run/postgresql/.s.PGSQL.5432").exists() else TCP_PG_URL


@dataclass(frozen=True, slots=True)
class TrialPlace:
    """A fresh place for one trial: a scratch directory and a database URL.

    For SQLite ``database_url`` is ``None``: the vault uses its default file under its home, and
    the floor uses ``sqlite_path`` (a file beside it, same directory, same filesystem).
    """

    directory: Path
    database_url: str | None
    sqlite_path: Path | None

    @property
    def url(self) -> str:
        """The URL for code that needs one explicitly (the floor)."""
        if self.database_url is not None:
            return self.database_url
        assert self.sqlite_path is not None
        return f"sqlite:///{self.sqlite_path}"


@dataclass(slots=True)
class Backend:
    """Hands out fresh trial places and removes them all when closed."""

    name: str
    root: Path
    pg_admin_url: str | None = None
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    checkpoints: bool | None = None
    _count: int = 0
    _databases: list[str] = field(default_factory=list)
    _admin_engine: Engine | None = None

    @contextmanager
    def trial(self, label: str, *, template: TrialPlace | None = None) -> Iterator[TrialPlace]:
        """A fresh directory (and PostgreSQL database), removed after the block.

        With ``template`` (a place of this backend whose files and connections are all
        closed), the new place starts as a copy of it: the directory's files copied, the
        PostgreSQL database created from the template's.
        """
        self._count += 1
        directory = self.root / f"{self._count:03d}-{label}"
        if template is None:
            directory.mkdir(parents=True)
        else:
            shutil.copytree(template.directory, directory)
        name = None
        try:
            if self.name == "sqlite":
                file = f"{label}.sqlite3"
                if template is not None and template.sqlite_path is not None:
                    file = template.sqlite_path.name  # the copied database keeps its name
                yield TrialPlace(directory, None, directory / file)
            else:
                name = f"bench_{self.run_id}_{self._count:03d}"
                if template is None:
                    self._admin(f'CREATE DATABASE "{name}"')
                else:
                    assert template.database_url is not None
                    source = make_url(template.database_url).database
                    self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
                self._databases.append(name)
                self._checkpoint()
                assert self.pg_admin_url is not None
                url = make_url(self.pg_admin_url).set(database=name)
                yield TrialPlace(directory, url.render_as_string(hide_password=False), None)
        finally:
            if name is not None:
                self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                self._databases.remove(name)
            shutil.rmtree(directory, ignore_errors=True)

    def _checkpoint(self) -> None:
        # Flush what earlier trials left dirty (and the drop/create just done), so a checkpoint
        # triggered by their WAL does not land inside this trial's timed part. Needs superuser
        # or pg_checkpoint; without it trials still run, only noisier.
        if self.checkpoints is False:
            return
        try:
            self._admin("CHECKPOINT")
        except DBAPIError:
            self.checkpoints = False
        else:
            self.checkpoints = True

    def _admin(self, sql: str) -> None:
        """One statement on the server's admin database, in autocommit; the connection is
        kept (a new one per statement cost ~3 server processes per trial)."""
        assert self.pg_admin_url is not None
        if self._admin_engine is None:
            self._admin_engine = create_engine(
                self.pg_admin_url, isolation_level="AUTOCOMMIT", pool_size=1
            )
        with self._admin_engine.connect() as conn:
            conn.execute(text(sql))

    def close(self) -> None:
        """Release the admin connection."""
        if self._admin_engine is not None:
            self._admin_engine.dispose()
            self._admin_engine = None

    def describe(self) -> dict[str, str]:
        """What the JSON report says about this backend."""
        if self.name == "sqlite":
            return {"backend": "sqlite", "where": str(self.root)}
        assert self.pg_admin_url is not None
        url = make_url(self.pg_admin_url)
        engine = create_engine(self.pg_admin_url)
        try:
            with engine.connect() as conn:
                version = str(conn.execute(text("SHOW server_version")).scalar_one())
                sync = str(conn.execute(text("SHOW synchronous_commit")).scalar_one())
        finally:
            engine.dispose()
        return {
            "backend": "postgres",
            "where": url.render_as_string(hide_password=True),
            "server_version": version,
            "synchronous_commit": sync,
            "checkpoint_before_each_trial": str(self.checkpoints),
        }


@contextmanager
def open_backend(name: str, *, pg_url: str = DEFAULT_PG_URL) -> Iterator[Backend]:
    """A backend whose trial places (temp files, ``bench_*`` databases) are gone afterwards."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}")
    root = Path(tempfile.mkdtemp(prefix=f"tvault-bench-{name}-"))
    backend = Backend(name=name, root=root, pg_admin_url=pg_url if name == "postgres" else None)
    try:
        if name == "postgres":
            backend._admin("SELECT 1")  # fail early, with the driver's message, if it is down
        yield backend
    finally:
        try:
            for leftover in list(backend._databases):
                backend._admin(f'DROP DATABASE IF EXISTS "{leftover}" WITH (FORCE)')
        finally:
            backend.close()
            shutil.rmtree(root, ignore_errors=True)
