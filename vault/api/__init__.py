"""The HTTP face (FastAPI): parse, authenticate, call one service, format."""

from vault.api.app import create_app

__all__ = ["create_app"]
