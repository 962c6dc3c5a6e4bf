"""Shared fixtures: a vault on a real SQLite file and on the real PostgreSQL server.

PostgreSQL tests never skip: if the server is down they fail (``.ci/run`` starts it). Each
PostgreSQL test gets a fresh database cloned from a migrated template, so tests are isolated
and parallel-safe.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from vault.bootstrap import Vault, build_vault
from vault.config import Settings
from vault.domain.principal import Principal, Role

PG_ADMIN_URL = os.environ.get(  # noqa: TID251 - test infrastructure, not product code
    "TVAULT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _pg_admin() -> Any:
    return create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A migrated PostgreSQL database used as the template of per-test databases."""
    name = f"tvault_tpl_{uuid.uuid4().hex[:10]}"
    admin = _pg_admin()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    from vault.storage import Database, upgrade_to_head

    db = Database(url)
    upgrade_to_head(db)
    db.dispose()
    yield name
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@contextmanager
def pg_database(template: str | None = None) -> Iterator[str]:
    """A new PostgreSQL database (a copy of ``template``, or empty), dropped afterwards."""
    name = f"tvault_t_{uuid.uuid4().hex[:12]}"
    admin = _pg_admin()
    like = f' TEMPLATE "{template}"' if template is not None else ""
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"{like}'))
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def pg_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for one test."""
    with pg_database(request.getfixturevalue("pg_template")) as url:
        yield url


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a real, empty database: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'vault.sqlite3'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def source_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """An empty database of its own for the source, on the same kind of server as the vault."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'source.sqlite3'}"
        return
    with pg_database() as url:
        yield url


class Clock:
    """A settable clock for services (time is injected, never patched)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.value = start or datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.value

    def advance(self, **kwargs: float) -> None:
        self.value += timedelta(**kwargs)


@pytest.fixture
def clock() -> Clock:
    """The clock the vault under test uses."""
    return Clock()


@pytest.fixture
def settings_factory(tmp_path: Path, database_url: str) -> Callable[..., Settings]:
    """Settings for a vault under ``tmp_path`` on the parametrized database."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "home": tmp_path / "home",
            "database_url": database_url,
            "scrypt_n": 2**14,
            "operator": "test-operator",
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def vault(settings_factory: Callable[..., Settings], clock: Clock) -> Iterator[Vault]:
    """A running vault (services only, no HTTP)."""
    v = build_vault(settings_factory(), now=clock)
    yield v
    v.close()


@pytest.fixture
def ux(vault: Vault) -> Vault:
    """The vault with a dataset named ``ux`` (make_dataset's defaults)."""
    make_dataset(vault, "ux")
    return vault


def principal(sub: str, *roles: Role, **kwargs: Any) -> Principal:
    """A principal as a verified token would produce it."""
    return Principal(sub=sub, roles=frozenset(roles), **kwargs)


OPERATOR = Principal(sub="test-operator", roles=frozenset(Role) - {Role.SUBJECT}, via="cli")
ADMIN = principal("alice-admin", Role.ADMIN)
COLLECTOR = principal("col-1", Role.COLLECTOR)
READER = principal("rd-1", Role.READER)
AUDITOR = principal("aud-1", Role.AUDITOR)
PRIVACY = principal("po-1", Role.PRIVACY_OFFICER)


def event(clock: Clock, subject: str = "emp-1", **fields: Any) -> dict[str, Any]:
    """A valid event stamped by ``clock`` (key_run by default)."""
    body: dict[str, Any] = {
        "subject": subject,
        "time": clock().isoformat(),
        "kind": "key_run",
        "app": "Code",
        "data": {"text": "hello world"},
    }
    body.update(fields)
    return body


def make_dataset(v: Vault, name: str = "ux", **overrides: Any) -> dict[str, Any]:
    """Create a dataset as the admin, opt_out so events are accepted without consent rows."""
    spec: dict[str, Any] = {
        "name": name,
        "retention_days": 30,
        "purposes": ["agent_training", "research"],
        "consent": "opt_out",
    }
    spec.update(overrides)
    return v.datasets.create(ADMIN, spec)
