"""Optional plug-ins the operator enables in the settings (third-party code kept out of domain)."""

from vault.plugins.ner import SpacyNameDetector, load_name_detector

__all__ = ["SpacyNameDetector", "load_name_detector"]
