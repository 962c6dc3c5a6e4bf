"""Key providers: where dataset KEKs and the checkpoint signing key live (never the database)."""

from vault.providers.base import KeyProvider, KeyState
from vault.providers.registry import open_provider

__all__ = ["KeyProvider", "KeyState", "open_provider"]
