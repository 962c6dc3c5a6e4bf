"""Authentication: bearer tokens to principals, failures audited; dev tokens for the CLI."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from vault.audit import AuditAction, Outcome
from vault.domain.principal import Principal
from vault.errors import AuthenticationError, ConfigurationError
from vault.services.base import Deps, ServiceBase
from vault.tokens import TokenVerifier, issue_dev_token

__all__ = ["AuthService"]

_ANONYMOUS = Principal(sub="anonymous", roles=frozenset())
_FAILURE_WINDOW_SECONDS = 1.0


def _bearer_token(authorization: str | None) -> str | None:
    """The token of a ``Bearer`` Authorization header, or ``None``."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


class AuthService(ServiceBase):
    """Turns ``Authorization`` header values into principals, one uniform failure."""

    def __init__(
        self,
        deps: Deps,
        verifier: TokenVerifier,
        *,
        dev_key: Path | None,
        issuer: str,
        audience: str,
        max_ttl_seconds: int,
    ) -> None:
        super().__init__(deps)
        self._verifier = verifier
        self._dev_key = dev_key
        self._issuer = issuer
        self._audience = audience
        self._max_ttl = max_ttl_seconds
        self._fail_lock = threading.Lock()
        self._failures: Counter[str] = Counter()
        self._last_failure_write = float("-inf")

    def remembered(self, authorization: str | None) -> Principal | None:
        """The principal of a ``Bearer`` header whose token was verified before and is still
        valid, else ``None`` (then :meth:`authenticate` decides, and audits a failure).
        No I/O: safe on the event loop."""
        token = _bearer_token(authorization)
        return self._verifier.remembered(token) if token is not None else None

    def authenticate(self, authorization: str | None) -> Principal:
        """The principal of a ``Bearer`` header, or an (audited) AuthenticationError."""
        token = _bearer_token(authorization)
        try:
            if token is None:
                raise AuthenticationError("authentication failed", details="no bearer token")
            return self._verifier.verify(token)
        except AuthenticationError as exc:
            self._audit_failure(str(exc.details or "invalid token"))
            raise AuthenticationError("authentication failed") from None

    def _audit_failure(self, reason: str) -> None:
        """Audit failed authentications, at most one entry per window per process.

        Anyone can send bad tokens; one audit row each (under the chain's single head lock)
        would let an anonymous caller grow the log and slow every writer. Failures inside a
        window are counted and written with the next entry, so none goes unrecorded.
        """
        with self._fail_lock:
            self._failures[reason[:200]] += 1
            now = time.monotonic()
            if now - self._last_failure_write < _FAILURE_WINDOW_SECONDS:
                return
            self._last_failure_write = now
        self.flush_failures()

    def flush_failures(self) -> None:
        """Write the failures counted since the last entry (also called on shutdown)."""
        with self._fail_lock:
            counts, self._failures = dict(self._failures), Counter()
        if not counts:
            return
        self.record_alone(
            _ANONYMOUS,
            AuditAction.AUTH_FAILED,
            Outcome.DENIED,
            reason=max(counts, key=lambda r: counts[r]),
            details={"failures": sum(counts.values()), "by_reason": counts},
        )

    def issue_dev_token(
        self,
        operator: Principal,
        *,
        sub: str,
        roles: Sequence[str],
        purposes: Sequence[str],
        datasets: Sequence[str],
        ttl_seconds: int,
    ) -> str:
        """A token signed with the development key (refused when there is none)."""
        if self._dev_key is None:
            raise ConfigurationError("no development signing key is configured")
        if ttl_seconds > self._max_ttl:
            raise ConfigurationError(f"ttl over the maximum of {self._max_ttl} seconds")
        token = issue_dev_token(
            self._dev_key,
            sub=sub,
            roles=roles,
            purposes=purposes,
            datasets=datasets,
            ttl_seconds=ttl_seconds,
            issuer=self._issuer,
            audience=self._audience,
            now=self.deps.now().timestamp(),
        )
        self.record_alone(
            operator,
            AuditAction.TOKEN_ISSUE,
            details={
                "for": self.keyring.person_hash(f"http:{sub}"),
                "roles": sorted(roles),
                "purposes": sorted(purposes),
                "datasets": sorted(datasets),
                "ttl_seconds": ttl_seconds,
            },
        )
        return token
