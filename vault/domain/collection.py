"""Collection rules: which events are refused at ingest, and why (DESIGN.md §5).

``decide_collection`` applies the rules in a fixed order and the first refusal wins, so an
event refused for several reasons always reports the same one:

1. consent (``consent_missing`` / ``consent_withdrawn``),
2. personal device (``personal_device``),
3. private or incognito window (``private_window``),
4. jurisdiction (``jurisdiction_missing`` / ``jurisdiction_not_allowed``),
5. excluded app (``excluded_app``), built-in categories plus the dataset's own list,
6. excluded domain (``excluded_domain``), the same for the host of ``url``,
7. time window (``too_old`` / ``in_future``): ``time`` must lie in
   ``[now - retention_days, now + clock_skew_seconds]``, both ends included, so a collector
   cannot slip data past retention by back-dating it.

The app rule compares the whole app name only. Window titles are not searched for app names:
titles are free text ("Chase" the bank vs. "Paper Chase"), and the false positives would
silently drop legitimate work. The one title check is for private-browsing markers, which are
specific enough to be safe (see ``_PRIVATE_TITLE``).

The refusal ``detail`` is safe to show to the collector: it never repeats the event's content.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from vault.domain.events import TelemetryEvent
from vault.domain.exclusions import (
    BUILTIN_CATEGORIES,
    DATASET_SOURCE,
    MAX_APP_NAME,
    ExclusionMatcher,
    canonical_host,
    normalize_app_name,
    normalize_domain,
)

__all__ = [
    "ACCEPTED",
    "MAX_CLOCK_SKEW_SECONDS",
    "MAX_EXCLUSION_ENTRIES",
    "MAX_RETENTION_DAYS",
    "REFUSAL_REASONS",
    "Accepted",
    "CollectionPolicy",
    "Decision",
    "Refused",
    "decide_collection",
    "url_host",
    "validate_dataset_exclusions",
]

MAX_EXCLUSION_ENTRIES = 256
# Bounds that keep the time arithmetic far from datetime's range; no real dataset is near them.
MAX_RETENTION_DAYS = 100_000
MAX_CLOCK_SKEW_SECONDS = 86_400

#: Every reason ``Refused.reason`` can carry. These codes are part of the API: stable.
REFUSAL_REASONS: frozenset[str] = frozenset(
    {
        "consent_missing",
        "consent_withdrawn",
        "personal_device",
        "private_window",
        "jurisdiction_missing",
        "jurisdiction_not_allowed",
        "excluded_app",
        "excluded_domain",
        "too_old",
        "in_future",
    }
)

_COUNTRY = re.compile(r"^[A-Z]{2}$")


@dataclass(frozen=True, slots=True)
class Accepted:
    """The event may be collected (it still goes through redaction)."""


#: The one ``Accepted`` value there is any need for.
ACCEPTED = Accepted()


@dataclass(frozen=True, slots=True)
class Refused:
    """The event is refused; ``reason`` is one of ``REFUSAL_REASONS``.

    ``detail`` is a human-readable explanation that never contains the event's content.
    """

    reason: str
    detail: str = ""

    def __post_init__(self) -> None:
        """Refuse reason codes outside the stable set, so a typo cannot reach clients."""
        if self.reason not in REFUSAL_REASONS:
            raise ValueError(f"unknown refusal reason: {self.reason!r}")


Decision = Accepted | Refused


def _check_entries(kind: str, items: Iterable[str]) -> list[str]:
    if isinstance(items, str):
        # A bare string is an Iterable[str] of characters: almost certainly a caller's mistake.
        raise ValueError(f"excluded {kind} must be a list of names, not a single string")
    entries = list(items)
    if len(entries) > MAX_EXCLUSION_ENTRIES:
        raise ValueError(f"too many excluded {kind}: at most {MAX_EXCLUSION_ENTRIES}")
    for entry in entries:
        if not isinstance(entry, str):
            raise ValueError(f"excluded {kind} must be strings")
    return entries


def validate_dataset_exclusions(
    apps: Iterable[str], domains: Iterable[str], categories: Iterable[str]
) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """Normalize a dataset's exclusions; raise ``ValueError`` with a clear message if invalid.

    Apps are case-folded with spaces collapsed (see ``normalize_app_name``); domains lose any
    scheme, port, path and trailing dot and become punycode (see ``normalize_domain``);
    categories must be built-in names. Each list holds at most ``MAX_EXCLUSION_ENTRIES``
    entries. Returns ``(apps, domains, categories)``.
    """
    normalized_apps: set[str] = set()
    for raw in _check_entries("apps", apps):
        app = normalize_app_name(raw)
        if not app:
            raise ValueError("excluded app names must not be empty")
        if len(app) > MAX_APP_NAME:
            raise ValueError(f"excluded app name longer than {MAX_APP_NAME} characters")
        normalized_apps.add(app)
    normalized_domains = {normalize_domain(raw) for raw in _check_entries("domains", domains)}
    normalized_categories: set[str] = set()
    for raw in _check_entries("categories", categories):
        name = raw.strip().lower()
        if name not in BUILTIN_CATEGORIES:
            known = ", ".join(sorted(BUILTIN_CATEGORIES))
            raise ValueError(f"unknown exclusion category {raw!r}; known categories: {known}")
        normalized_categories.add(name)
    return (
        frozenset(normalized_apps),
        frozenset(normalized_domains),
        frozenset(normalized_categories),
    )


@dataclass(frozen=True, slots=True)
class CollectionPolicy:
    """A dataset's collection settings, validated and normalized on construction.

    ``jurisdictions`` is ``None`` for "any"; otherwise a non-empty set of ISO 3166-1 alpha-2
    codes. ``excluded_*`` hold only the dataset's own additions: the always-on built-in
    categories are applied whatever they contain. Invalid values raise ``ValueError``.
    """

    consent_mode: Literal["opt_in", "opt_out"]
    retention_days: int
    jurisdictions: frozenset[str] | None
    excluded_apps: frozenset[str]
    excluded_domains: frozenset[str]
    excluded_categories: frozenset[str]
    clock_skew_seconds: int
    _matcher: ExclusionMatcher = field(init=False, repr=False, compare=False)
    _max_age: timedelta = field(init=False, repr=False, compare=False)
    _max_ahead: timedelta = field(init=False, repr=False, compare=False)
    _app_sources: dict[str, str | None] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Validate, normalize the exclusion lists and compile them once for every event."""
        if self.consent_mode not in ("opt_in", "opt_out"):
            raise ValueError("consent_mode must be 'opt_in' or 'opt_out'")
        if not _is_int(self.retention_days) or not 1 <= self.retention_days <= MAX_RETENTION_DAYS:
            raise ValueError(f"retention_days must be an integer in 1..{MAX_RETENTION_DAYS}")
        if (
            not _is_int(self.clock_skew_seconds)
            or not 0 <= self.clock_skew_seconds <= MAX_CLOCK_SKEW_SECONDS
        ):
            raise ValueError(
                f"clock_skew_seconds must be an integer in 0..{MAX_CLOCK_SKEW_SECONDS}"
            )
        if self.jurisdictions is not None:
            codes = frozenset(code.strip().upper() for code in self.jurisdictions)
            if not codes:
                raise ValueError("jurisdictions must be None (any) or a non-empty set")
            bad = sorted(code for code in codes if not _COUNTRY.fullmatch(code))
            if bad:
                raise ValueError(f"jurisdictions must be ISO 3166-1 alpha-2 codes: {bad!r}")
            object.__setattr__(self, "jurisdictions", codes)
        apps, domains, categories = validate_dataset_exclusions(
            self.excluded_apps, self.excluded_domains, self.excluded_categories
        )
        object.__setattr__(self, "excluded_apps", apps)
        object.__setattr__(self, "excluded_domains", domains)
        object.__setattr__(self, "excluded_categories", categories)
        object.__setattr__(self, "_matcher", ExclusionMatcher(apps, domains, categories))
        object.__setattr__(self, "_max_age", timedelta(days=self.retention_days))
        object.__setattr__(self, "_max_ahead", timedelta(seconds=self.clock_skew_seconds))
        object.__setattr__(self, "_app_sources", {})

    @property
    def matcher(self) -> ExclusionMatcher:
        """The compiled exclusions (always-on categories included)."""
        return self._matcher

    def app_source(self, app: str) -> str | None:
        """``matcher.app_source(app)``, remembered per app name: a dataset's events come from
        a few apps, and normalizing the name costs more than the rest of the app rule. At most
        ``_MAX_APPS_REMEMBERED`` names are kept (then all are forgotten at once)."""
        sources = self._app_sources
        try:
            return sources[app]
        except KeyError:
            pass
        source = self._matcher.app_source(app)
        if len(sources) >= _MAX_APPS_REMEMBERED:
            sources.clear()
        sources[app] = source
        return source


_MAX_APPS_REMEMBERED = 1024


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
# Schemes for which browsers treat backslashes as slashes and need no "//" before the host
# ("https:chase.com" and "https:\\chase.com" both go to chase.com).
_SPECIAL_SCHEMES = frozenset({"http", "https", "ws", "wss", "ftp"})
_AUTHORITY_END = re.compile(r"[/\\?#]")
_C0_AND_SPACE = "".join(chr(code) for code in range(0x21))


_WRAPPERS = ("blob:", "view-source:")


def _unwrap(text: str) -> str:
    """Wrapper schemes show the page of the URL they wrap: judge that one."""
    for _ in range(3):
        for prefix in _WRAPPERS:
            if text[: len(prefix)].lower() == prefix:
                text = text[len(prefix) :]
                break
        else:
            return text
    return text


def url_host(url: str) -> str | None:
    """The host a URL points to, in ``canonical_host`` form, or ``None``. Never raises.

    Follows what a browser would do closely enough for exclusion matching: user information
    is skipped (the host is after the *last* ``@``: ``https://chase.com@evil.example`` goes to
    ``evil.example``), ports are dropped, IPv6 literals lose their brackets, a missing scheme
    (``chase.com/login``, ``chase.com:443``) is tolerated, and URLs without a host
    (``mailto:``, ``about:``, ``data:``, ``file:///``) give ``None``.
    """
    if not isinstance(url, str):
        return None
    text = url.strip(_C0_AND_SPACE)
    # Browsers remove tabs and newlines anywhere in a URL before parsing it.
    text = text.replace("\t", "").replace("\n", "").replace("\r", "")
    text = _unwrap(text)
    scheme = _SCHEME.match(text)
    if scheme is not None:
        name = scheme.group()[:-1].lower()
        rest = text[scheme.end() :]
        if name in _SPECIAL_SCHEMES:
            authority = rest.lstrip("/\\")
        elif rest.startswith("//"):
            authority = rest[2:]
        elif rest[:1].isdigit():
            authority = text  # "host:port/..." with no scheme: the "scheme" was the host
        else:
            return None  # an opaque URI (mailto:, about:, data:, javascript:...)
    elif text.startswith(("//", "\\\\")):
        authority = text[2:]
    else:
        authority = text
    authority = _AUTHORITY_END.split(authority, maxsplit=1)[0]
    host_port = authority.rpartition("@")[2]
    if host_port.startswith("["):
        end = host_port.find("]")
        if end < 0:
            return None
        return canonical_host(host_port[1:end])
    return canonical_host(host_port.partition(":")[0])


# A safety net behind the collector's ``private_window`` flag: Firefox ends a private window's
# title with "Private Browsing", Chrome can end it with "(Incognito)", Edge shows
# "[InPrivate]". Page titles practically never end with (or contain) these markers.
_PRIVATE_TITLE = re.compile(r"Private Browsing\s*$|\(Incognito\)\s*$|\[InPrivate\]", re.IGNORECASE)


def _source_detail(source: str, what: str) -> str:
    if source == DATASET_SOURCE:
        return f"{what} is on the dataset's exclusion list"
    return f"{what} is in the built-in exclusion category {source!r}"


# Each check answers a refusal or None; decide_collection runs them in the documented order of
# the rules. No per-event object is built: this runs for every event of every batch.
Consent = Literal["granted", "withdrawn"] | None


def _check_consent(policy: CollectionPolicy, consent: Consent) -> Refused | None:
    if consent == "withdrawn":
        return Refused("consent_withdrawn", "the subject has withdrawn consent for this dataset")
    if policy.consent_mode == "opt_in" and consent != "granted":
        return Refused("consent_missing", "this dataset is opt-in and the subject has not opted in")
    return None


def _check_device(event: TelemetryEvent) -> Refused | None:
    device = event.device
    if device is not None and device.owner == "personal":
        return Refused("personal_device", "events from personal devices are never collected")
    return None


def _check_private_window(event: TelemetryEvent) -> Refused | None:
    title = event.window_title
    if event.private_window or (title is not None and _PRIVATE_TITLE.search(title)):
        return Refused("private_window", "events from private browsing windows are never collected")
    return None


def _check_jurisdiction(event: TelemetryEvent, policy: CollectionPolicy) -> Refused | None:
    allowed = policy.jurisdictions
    if allowed is None:
        return None
    if event.jurisdiction is None:
        return Refused("jurisdiction_missing", "this dataset requires a jurisdiction")
    if event.jurisdiction not in allowed:
        return Refused(
            "jurisdiction_not_allowed", "the jurisdiction is not allowed for this dataset"
        )
    return None


def _check_app(event: TelemetryEvent, policy: CollectionPolicy) -> Refused | None:
    if event.app is None:
        return None
    source = policy.app_source(event.app)
    if source is None:
        return None
    return Refused("excluded_app", _source_detail(source, "the app"))


def _check_domain(event: TelemetryEvent, policy: CollectionPolicy) -> Refused | None:
    host = url_host(event.url) if event.url is not None else None
    source = policy.matcher.host_source(host) if host is not None else None
    if source is None:
        return None
    return Refused("excluded_domain", _source_detail(source, "the site"))


def _check_time(event: TelemetryEvent, policy: CollectionPolicy, now: datetime) -> Refused | None:
    age = now - event.time
    if age > policy._max_age:
        return Refused(
            "too_old", f"the event is older than the retention ({policy.retention_days} days)"
        )
    if -age > policy._max_ahead:
        return Refused(
            "in_future",
            f"the event is stamped more than {policy.clock_skew_seconds} s in the future",
        )
    return None


def decide_collection(
    event: TelemetryEvent,
    policy: CollectionPolicy,
    consent: Consent,
    now: datetime,
) -> Decision:
    """Whether ``event`` may be collected under ``policy``; the first refusal wins.

    ``consent`` is the subject's recorded consent for this dataset (``None``: never given nor
    withdrawn). A withdrawal is reported as ``consent_withdrawn`` in both modes; in
    ``opt_in`` mode the absence of a grant is ``consent_missing``. ``now`` must be
    timezone-aware (``ValueError`` otherwise); it is passed in because the domain layer has
    no clock.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    return (
        _check_consent(policy, consent)
        or _check_device(event)
        or _check_private_window(event)
        or _check_jurisdiction(event, policy)
        or _check_app(event, policy)
        or _check_domain(event, policy)
        or _check_time(event, policy, now)
        or ACCEPTED
    )
