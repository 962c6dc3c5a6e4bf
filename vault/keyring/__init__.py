"""The key hierarchy and its cache (DESIGN.md §3)."""

from vault.keyring.hierarchy import Keyring, SubjectKey, dataset_key_ref

__all__ = ["Keyring", "SubjectKey", "dataset_key_ref"]
