"""Synthetic telemetry that looks like what collectors send, made deterministically.

Every scenario draws its events from here so that the floor and the vault, and later the HTTP
and peer scenarios, seal exactly the same plaintexts. Nothing here is timed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["TEXT_BYTES", "Workload", "key_run_batches"]

#: Target size of the typed text in each key_run event.
TEXT_BYTES = 256

_TEXT = (
    "the meeting notes for the quarterly planning review are in the shared folder and "
    "we should update the rollout checklist before friday so that the release train "
    "can leave on time please check the failing test in the build pipeline it looks "
    "like a timeout when the cache is cold I will pair with you after lunch on the "
    "migration script and the dashboard numbers for latency and throughput customer "
    "asked about invoices export format csv or json thanks again for the quick fix"
)
_WORDS = tuple(_TEXT.split())

_FIRST = ("ana", "ben", "chloe", "dmitri", "eva", "farid", "grace", "hiro", "ines", "jon")
_DOMAINS = ("example.com", "corp.example.org", "mail.example.net", "partner.example.io")
_SITES = (
    "https://github.com/acme/platform/pull/{n}",
    "https://docs.python.org/3/library/json.html#{w}",
    "https://jira.example.com/browse/OPS-{n}",
    "https://wiki.example.com/spaces/ENG/pages/{n}?focus={w}",
    "https://deploy:hunter{n}@ci.example.com/job/{w}",  # a password in a URL: redacted
)
_APPS = (
    # (app, window title pattern, url pattern or None)
    ("Code", "ingest.py - platform - Visual Studio Code", None),
    ("Slack", "Slack - #platform-team", None),
    ("Terminal", "bash - 120x40", None),
    ("Google Chrome", "Pull request #{n} - GitHub", "https://github.com/acme/platform/pull/{n}"),
    ("Outlook", "Inbox - {email}", None),
)


def _email(rng: random.Random) -> str:
    return f"{rng.choice(_FIRST)}.{rng.choice(_FIRST)}@{rng.choice(_DOMAINS)}"


def _text(rng: random.Random, text_bytes: int = TEXT_BYTES) -> str:
    """About ``TEXT_BYTES`` of typed text: words, and in some runs an e-mail address or a URL.

    Roughly a third of the runs hold an e-mail address, a fifth a URL (one URL pattern in five
    carries a password): the redactor's prefilter lets those through to the full detector pass,
    as real typing does.
    """
    parts: list[str] = []
    size = 0
    roll = rng.random()
    extra: str | None = None
    if roll < 0.33:
        extra = _email(rng)
    elif roll < 0.53:
        extra = rng.choice(_SITES).format(n=rng.randrange(10, 9999), w=rng.choice(_WORDS))
    insert_at = rng.randrange(4, 20)
    while size < text_bytes:
        word = extra if extra is not None and len(parts) == insert_at else rng.choice(_WORDS)
        parts.append(word)
        size += len(word) + 1
    return " ".join(parts)[:text_bytes]


@dataclass(frozen=True, slots=True)
class Workload:
    """One benchmark input: ``batches`` lists of ``batch_size`` collector-format events."""

    batch_size: int
    batches: list[list[dict[str, Any]]]

    @property
    def events(self) -> int:
        """How many events the batches hold in all."""
        return self.batch_size * len(self.batches)


def key_run_batches(
    *,
    batch_size: int,
    batches: int,
    subjects: int = 8,
    now: datetime | None = None,
    seed: int = 1,
    text_bytes: int = TEXT_BYTES,
    day: datetime | None = None,
) -> Workload:
    """``batches`` batches of ``batch_size`` key_run events, spread over ``subjects`` people.

    All events fall on one UTC day (today) and before ``now``, so the vault accepts every one
    (opt_out dataset, default retention) and one subject-epoch key per subject serves them all.
    ``text_bytes`` sets the typed text's size; ``day`` (any instant of it) puts the events on
    another, whole UTC day instead (for data prepared with a controlled clock).
    """
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    if day is not None:
        day_start = day.replace(hour=0, minute=0, second=0, microsecond=0)
        span = timedelta(days=1) - timedelta(seconds=1)
    else:
        day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        span = max(now - day_start - timedelta(seconds=1), timedelta(0))
    total = batch_size * batches
    people = [f"employee-{i:04d}@example.com" for i in range(subjects)]
    out: list[list[dict[str, Any]]] = []
    for b in range(batches):
        batch: list[dict[str, Any]] = []
        for i in range(batch_size):
            k = b * batch_size + i
            when = day_start + span * (k / max(total, 1))
            app, title, url = rng.choice(_APPS)
            n = rng.randrange(10, 9999)
            event: dict[str, Any] = {
                "subject": people[k % subjects],
                "time": when.isoformat(timespec="milliseconds"),
                "kind": "key_run",
                "app": app,
                "window_title": title.format(n=n, email=_email(rng)),
                "device": {"id": f"laptop-{k % subjects:04d}", "owner": "corporate"},
                "jurisdiction": "DE",
                "data": {"text": _text(rng, text_bytes)},
            }
            if url is not None:
                event["url"] = url.format(n=n)
            batch.append(event)
        out.append(batch)
    return Workload(batch_size=batch_size, batches=out)
