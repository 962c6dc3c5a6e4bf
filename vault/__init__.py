"""telemetry-vault: an encrypted, purpose-bound, audited store for computer-use telemetry."""

__version__ = "0.1.0"
__all__ = ["__version__"]
