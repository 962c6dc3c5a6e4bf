"""Labelled samples for the redaction benchmarks: one shape for the dev file and synthetic data.

A :class:`Sample` is one text (and, for synthetic telemetry, the events that carry it) with one
label: ``secret`` / ``not_secret`` (a secret detector must / must not fire; ``rule`` names the
provider or near-miss family) or ``pii`` / ``not_pii`` (``entity`` names the personal-data type;
``spans`` locate every labelled value in ``text``).

The dev file (``../shared/data/redaction-dev.jsonl``) gives spans for most PII samples but none
for secrets. :func:`derive_secret_span` finds the secret in a ``secret`` sample; the method, in
order (the first that applies wins, and each sample records which one did):

1. ``rule-pattern``: the public token format of the sample's rule (``_VALUE_PATTERNS``: AWS key
   ids, JWTs, Mailchimp keys, URL passwords, public IPv4s...), leftmost-longest match;
2. ``assignment``: the value of the last ``name = value`` / ``name: value`` / ``name := value``
   / ``name => value`` in the text whose name holds a letter, quotes stripped;
3. ``longest-token``: the longest run of characters that are not white space, quotes, commas,
   semicolons or brackets.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_DEV_PATH",
    "LABELS",
    "Sample",
    "Span",
    "derive_secret_span",
    "load_jsonl",
]

#: The shared labelled dev set, relative to the repository root.
DEFAULT_DEV_PATH = Path("../shared/data/redaction-dev.jsonl")

LABELS = ("secret", "not_secret", "pii", "not_pii")


@dataclass(frozen=True, slots=True)
class Span:
    """``text[start:end]`` is a labelled value of type ``entity``."""

    start: int
    end: int
    entity: str


@dataclass(frozen=True, slots=True)
class Sample:
    """One labelled text, optionally carried by telemetry events (collector-format dicts).

    For ``secret`` samples ``spans`` holds the secret value(s) (``entity`` is the rule); for
    ``pii`` the personal data; for negatives, where present, the near-miss value (never scored,
    kept so that a false positive can be explained and the generator tested).
    """

    id: str
    source: str
    rule: str
    label: str
    text: str
    entity: str | None = None
    spans: tuple[Span, ...] = ()
    events: tuple[dict[str, Any], ...] = ()
    scenario: str = "text"
    span_method: str = "given"
    meta: dict[str, Any] = field(default_factory=dict)

    def values(self) -> list[str]:
        """The labelled values, ``text[start:end]`` of each span."""
        return [self.text[s.start : s.end] for s in self.spans]


# Public token formats of the dev file's rules (named as detect-secrets names its plugins),
# used only to locate the secret in a labelled sample, never to score anything.
_IPV4 = r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])"
_VALUE_PATTERNS: dict[str, tuple[str, ...]] = {
    "artifactory": (r"(?:AKC|AP[0-9A-F])[A-Za-z0-9]{8,}",),
    "aws_key": (r"(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}",),
    "azure_storage_key": (r"AccountKey=(?P<v>[A-Za-z0-9+/=]{20,})",),
    "basic_auth": (r"://[^\s/:@]+:(?P<v>[^\s/@]+)@",),
    "ip_public": (_IPV4,),
    "jwt": (r"eyJ[\w-]+\.eyJ[\w-]+(?:\.[\w-]*)?",),
    "mailchimp_key": (r"[0-9a-f]{32}-us\d{1,2}",),
    "npm": (r"_authToken=\s*(?P<v>\S+)",),
    "openai": (r"sk-(?:proj-)?[\w-]{20,}",),
    "pypi_token": (r"pypi-[\w-]{16,}",),
    "sendgrid": (r"SG\.[\w-]{16,}\.[\w-]{16,}",),
    "stripe_key": (r"[rs]k_live_[A-Za-z0-9]{16,}",),
    "telegram_token": (r"\d{8,10}:[\w-]{35}",),
    "twilio": (r"(?:AC|SK)[a-z0-9]{32}",),
    "github_token": (r"(?:gh[pousr]_|github_pat_)\w{30,}",),
    "slack": (r"xox[a-z]-[\w-]{10,}",),
}
_COMPILED = {rule: tuple(re.compile(p) for p in ps) for rule, ps in _VALUE_PATTERNS.items()}
_ASSIGNMENT = re.compile(
    r"[\w.\-]*[A-Za-z][\w.\-]*[\"']?[ \t]*(?::=|=>|=|:)[ \t]*(?P<q>[\"']?)(?P<v>[^\s\"',;]+)(?P=q)"
)
_TOKEN = re.compile(r"[^\s\"'`,;()\[\]{}<>]+")


def derive_secret_span(text: str, rule: str) -> tuple[Span, str]:
    """Locate the secret value in a ``secret`` sample without spans; returns (span, method)."""
    for pattern in _COMPILED.get(rule, ()):
        best: tuple[int, int] | None = None
        for match in pattern.finditer(text):
            group = "v" if "v" in pattern.groupindex else 0
            start, end = match.span(group)
            if best is None or end - start > best[1] - best[0]:
                best = (start, end)
        if best is not None:
            return Span(best[0], best[1], rule), "rule-pattern"
    assignments = [m for m in _ASSIGNMENT.finditer(text) if "://" not in m.group(0)]
    if assignments and len(assignments[-1].group("v")) >= 8:
        start, end = assignments[-1].span("v")
        return Span(start, end, rule), "assignment"
    tokens = list(_TOKEN.finditer(text)) or [re.match(r".*", text, re.DOTALL)]
    longest = max(tokens, key=lambda m: (m.end() - m.start(), -m.start()))  # type: ignore[union-attr]
    return Span(longest.start(), longest.end(), rule), "longest-token"  # type: ignore[union-attr]


def _sample_from_row(row: dict[str, Any]) -> Sample:
    label = row["label"]
    if label not in LABELS:
        raise ValueError(f"{row.get('id')}: unknown label {label!r}")
    text = row["text"]
    spans = tuple(Span(int(s), int(e), str(t)) for s, e, t in row.get("spans") or ())
    method = "given"
    if label == "secret" and not spans:
        span, method = derive_secret_span(text, row["rule"])
        spans = (span,)
    elif label == "pii" and not spans:
        method = "none"  # scored on the placeholder type alone, see redaction_eval
    return Sample(
        id=row["id"],
        source=f"dev:{row['source']}",
        rule=row["rule"],
        label=label,
        text=text,
        entity=row.get("entity"),
        spans=spans,
        scenario="text",
        span_method=method,
    )


def load_jsonl(paths: Iterable[Path]) -> list[Sample]:
    """Samples of labelled JSONL files in the dev file's format (see its README)."""
    out: list[Sample] = []
    for path in paths:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    out.append(_sample_from_row(json.loads(line)))
                except (KeyError, ValueError, TypeError) as exc:
                    raise ValueError(f"{path}:{number}: {exc}") from exc
    return out
