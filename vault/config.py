"""Settings: the only module that reads the environment or a config file.

Every setting comes, in order of precedence, from keyword arguments (CLI flags), environment
variables prefixed ``TVAULT_``, the TOML file named by ``TVAULT_CONFIG`` (or
``$TVAULT_HOME/tvault.toml`` when present), then the defaults below. The object is built once,
in a face, and passed down.
"""

from __future__ import annotations

import getpass
import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from vault.errors import ConfigurationError

__all__ = ["Settings", "load_settings"]


def _default_operator() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "operator"


class Settings(BaseSettings):
    """Every knob of the vault, with its default."""

    model_config = SettingsConfigDict(env_prefix="TVAULT_", extra="forbid", frozen=True)

    # -- where things live ------------------------------------------------------------------
    home: Path = Field(default_factory=Path.cwd, description="Embedded default state directory")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default sqlite file $home/tvault.sqlite3"
    )
    key_provider: str | None = Field(
        default=None, description="Key provider URI; default local://$home/keys"
    )
    master_passphrase: SecretStr | None = Field(
        default=None, description="Seals the local keyring; unset means unsealed (dev only)"
    )
    new_master_passphrase: SecretStr | None = Field(
        default=None, description="New passphrase for `tvault keys rotate-master`"
    )
    scrypt_n: int = Field(default=2**17, ge=2**14, le=2**22)

    # -- HTTP ---------------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = Field(default=8600, ge=1, le=65535)
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    max_blob_bytes: int = Field(default=16 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024)
    max_batch_events: int = Field(default=1000, ge=1, le=100_000)
    max_json_depth: int = Field(default=32, ge=4, le=256)
    max_page_size: int = Field(default=1000, ge=1)

    # -- tokens -------------------------------------------------------------------------------
    jwt_algorithms: tuple[str, ...] = ("EdDSA",)
    jwt_issuer: str = "tvault-dev"
    jwt_audience: str = "tvault"
    jwt_leeway_seconds: int = Field(default=30, ge=0, le=300)
    jwt_max_ttl_seconds: int = Field(default=24 * 3600, ge=60)
    jwt_public_key_files: tuple[Path, ...] = ()
    jwt_jwks: str | None = Field(default=None, description="JWKS file path or https URL")
    dev_tokens: bool = Field(
        default=True, description="Make and trust a development signing key under keys/"
    )

    # -- policy -------------------------------------------------------------------------------
    forbidden_purposes_extra: tuple[str, ...] = ()
    clock_skew_seconds: int = Field(default=300, ge=0, le=3600)
    ner: str | None = Field(
        default=None,
        description="Person-name detector, e.g. spacy:en_core_web_sm (an installed package or a"
        " directory; never downloaded); unset: no name detection",
    )

    # -- keys ---------------------------------------------------------------------------------
    key_cache_size: int = Field(default=10_000, ge=1)
    key_cache_ttl_seconds: float = Field(default=300.0, gt=0)
    sek_max_wraps: int = Field(default=2**24, ge=1, le=2**30)
    maintenance_interval_seconds: float = Field(
        default=3600.0, ge=0, description="Sweep/rotation job period in `serve`; 0 disables it"
    )
    shred_interval_hours: float = Field(
        default=24.0, gt=0, le=24 * 30, description="Longest time an erasure waits to reach backups"
    )

    # -- import -------------------------------------------------------------------------------
    import_helper: bool = Field(
        default=True,
        description="Redact an import's next batch in a forked helper process while the current"
        " one is stored (where fork exists); false: everything in the importing process",
    )

    # -- export -------------------------------------------------------------------------------
    export_workers: int | None = Field(
        default=None,
        ge=0,
        le=64,
        description="Worker processes that open and format pages of exports of two pages or"
        " more beside the exporting process (shared by concurrent exports; one export uses at"
        " most one); unset: one less than the CPUs this process may use, at most 2; 0: none",
    )

    # -- operator (CLI) -----------------------------------------------------------------------
    operator: str = Field(default_factory=_default_operator)

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def effective_database_url(self) -> str:
        """The database URL in force."""
        return self.database_url or f"sqlite:///{self.home / 'tvault.sqlite3'}"

    @property
    def effective_key_provider(self) -> str:
        """The key-provider URI in force."""
        return self.key_provider or f"local://{self.home / 'keys'}"

    @property
    def keys_dir(self) -> Path:
        """The local keyring directory (also home of the development token key)."""
        return self.home / "keys"


def _config_file(home: Path | None) -> dict[str, Any]:
    explicit = os.environ.get("TVAULT_CONFIG")
    path = Path(explicit) if explicit else (home or Path.cwd()) / "tvault.toml"
    if not path.is_file():
        if explicit:
            raise ConfigurationError(f"config file not found: {path}")
        return {}
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"cannot read config file {path}: {exc}") from exc
    return dict(data.get("tvault", data))


def load_settings(**overrides: Any) -> Settings:
    """Build the one Settings object: flags over environment over config file over defaults."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    home_hint = overrides.get("home") or os.environ.get("TVAULT_HOME")
    file_values = _config_file(Path(home_hint) if home_hint else None)
    env_keys = {k[len("TVAULT_") :].lower() for k in os.environ if k.startswith("TVAULT_")}
    merged = {k: v for k, v in file_values.items() if k not in env_keys}
    merged.update(overrides)
    try:
        return Settings(**merged)
    except ValueError as exc:
        raise ConfigurationError(f"invalid settings: {exc}") from exc
