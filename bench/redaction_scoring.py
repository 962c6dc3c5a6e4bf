"""How a redactor is scored on labelled samples (shared by redaction_eval and redaction_speed).

A *redactor* is anything with ``redact_text(text) -> (redacted, counts_by_type)``; the vault's
engine may also redact whole events. Scoring, per sample label:

* ``secret``: a **hit** when the secret value no longer survives in the redacted output. It
  survives when it is still there verbatim, or when a fragment of it of at least half its length
  (and at least 8 characters) is still there: redacting the first few characters of a token is
  not redacting it. Placeholders (``[TYPE]`` or ``[TYPE:pseudonym]``) are cut out of the output
  first, so a placeholder never "contains" a value.
* ``not_secret``: a **false positive** when any *secret-type* placeholder was produced (a
  personal-data placeholder, e.g. an e-mail address in the same line, is not a secret FP).
* ``pii`` with spans: each span is scored on its own: a hit when its text is gone. Spans with the
  same text are scored together: of ``k`` such spans, ``min(k, before - after)`` are hits, where
  ``before``/``after`` count the text's occurrences in the input/output; a surviving fragment of
  half the value (as for secrets) makes them all misses.
* ``pii`` without spans (a few dev samples): one unit, a hit when a placeholder of the entity's
  type was produced.
* ``not_pii``: a **false positive** when a placeholder of *that entity's* type was produced.

Entity labels map to the vault's placeholder types through one explicit table,
``ENTITY_PLACEHOLDERS``. An entity is *supported* by a redactor when one of its placeholder types
is among the types that redactor can produce; unsupported entities are reported but left out of
the "supported types" recall.

For samples carried by events (synthetic telemetry), a redactor that can redact events gets the
events; the scorer rebuilds the text a reader of the stored records would see: ``key`` events of
one focus target (app, window, field) are replayed (characters appended, ``Backspace`` removes
the last one, ``Enter``/``Tab`` become a newline/tab, other named keys and masks add nothing),
``key_run`` texts of one target are joined, and every other string (titles, URLs, field labels,
clipboard, custom data) is a line of its own. Other redactors get the sample's flat text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from bench.redaction_samples import Sample

__all__ = [
    "ENTITY_PLACEHOLDERS",
    "OUT_OF_SCOPE",
    "PII_PLACEHOLDERS",
    "EventRedactor",
    "Redactor",
    "SampleResult",
    "entity_types",
    "events_view",
    "score_sample",
    "score_samples",
    "strip_placeholders",
    "survives",
]


class Redactor(Protocol):
    """What the scorer needs of a redactor."""

    name: str

    def redact_text(self, text: str) -> tuple[str, dict[str, int]]:
        """The redacted text and the number of placeholders per type."""
        ...

    def produces(self) -> frozenset[str]:
        """Every placeholder type this redactor can produce."""
        ...

    def is_pii_type(self, kind: str) -> bool:
        """Whether a placeholder type is personal data (otherwise it is a secret type)."""
        ...


class EventRedactor(Redactor, Protocol):
    """A redactor that also redacts collector-format events (the vault's engine)."""

    def redact_events(
        self, events: Sequence[dict[str, Any]]
    ) -> list[tuple[dict[str, Any], dict[str, int]]]:
        """Each event's stored body after redaction, with its counts."""
        ...


# Dataset entity label -> the vault placeholder types that cover it (any alias the engine may
# use). An empty tuple: out of the engine's scope by design (reported, never "supported").
# An entity not listed maps to a placeholder type of its own name (UK_NINO -> [UK_NINO]), so a
# country-specific rule the engine adds later is picked up without editing this table.
_PASSPORT = ("PASSPORT",)
_LICENCE = ("DRIVING_LICENCE", "DRIVER_LICENSE", "DRIVING_LICENSE")
_PHONE = ("PHONE", "PHONE_NUMBER")
ENTITY_PLACEHOLDERS: dict[str, tuple[str, ...]] = {
    "EMAIL": ("EMAIL",),
    "PHONE": _PHONE,
    "PH_MOBILE_NUMBER": _PHONE,
    "TR_PHONE_NUMBER": _PHONE,
    "CREDIT_CARD": ("CREDIT_CARD",),
    "IBAN": ("IBAN",),
    "US_SSN": ("US_SSN", "SSN"),
    "IP_ADDRESS": ("IP_ADDRESS", "IPV4", "IPV6"),
    "DATE_OF_BIRTH": ("DATE_OF_BIRTH", "DOB"),
    "PASSPORT": _PASSPORT,
    "US_PASSPORT": _PASSPORT,
    "UK_PASSPORT": _PASSPORT,
    "DE_PASSPORT": _PASSPORT,
    "ES_PASSPORT": _PASSPORT,
    "IN_PASSPORT": _PASSPORT,
    "IT_PASSPORT": _PASSPORT,
    "KR_PASSPORT": _PASSPORT,
    "DRIVING_LICENCE": _LICENCE,
    "US_DRIVER_LICENSE": _LICENCE,
    "UK_DRIVING_LICENCE": _LICENCE,
    "IT_DRIVER_LICENSE": _LICENCE,
    "KR_DRIVER_LICENSE": _LICENCE,
    "DE_FUEHRERSCHEIN": _LICENCE,
    "STREET_ADDRESS": ("STREET_ADDRESS", "ADDRESS"),
    "PERSON": ("PERSON", "PERSON_NAME"),
    "MAC_ADDRESS": ("MAC_ADDRESS",),
    # National and sector identifiers: each its own type, should the engine grow a rule for it.
    **{
        name: (name,)
        for name in (
            "US_ITIN",
            "US_BANK_NUMBER",
            "US_NPI",
            "US_MBI",
            "ABA_ROUTING_NUMBER",
            "MEDICAL_LICENSE",
            "UK_NINO",
            "UK_NHS",
            "UK_POSTCODE",
            "UK_VEHICLE_REGISTRATION",
            "CA_SIN",
            "AU_ABN",
            "AU_ACN",
            "AU_TFN",
            "AU_MEDICARE",
            "DE_ID_CARD",
            "DE_TAX_ID",
            "DE_TAX_NUMBER",
            "DE_SOCIAL_SECURITY",
            "DE_HEALTH_INSURANCE",
            "DE_VAT_ID",
            "DE_KFZ",
            "DE_PLZ",
            "DE_BSNR",
            "DE_LANR",
            "DE_HANDELSREGISTER",
            "ES_NIE",
            "ES_NIF",
            "FI_PERSONAL_IDENTITY_CODE",
            "FIN",
            "IN_AADHAAR",
            "IN_PAN",
            "IN_GSTIN",
            "IN_VOTER",
            "IN_VEHICLE_REGISTRATION",
            "IT_FISCAL_CODE",
            "IT_IDENTITY_CARD",
            "IT_VAT_CODE",
            "KR_RRN",
            "KR_FRN",
            "KR_BRN",
            "NG_VEHICLE_REGISTRATION",
            "PH_TIN",
            "PL_PESEL",
            "SE_PERSONNUMMER",
            "SE_ORGANISATIONSNUMMER",
            "SG_UEN",
            "TH_TNIN",
            "TR_NATIONAL_ID",
            "TR_LICENSE_PLATE",
            "ZA_ID_NUMBER",
            "CRYPTO_WALLET",
        )
    },
    # Out of scope: any date or time (only dates of birth are personal data here), ages, places,
    # organisations, titles, nationalities, URLs and domains as such, bare postcodes.
    "DATE_TIME": (),
    "AGE": (),
    "GPE": (),
    "ORGANIZATION": (),
    "TITLE": (),
    "NRP": (),
    "URL": (),
    "DOMAIN_NAME": (),
    "ZIP_CODE": (),
}
OUT_OF_SCOPE = frozenset(e for e, types in ENTITY_PLACEHOLDERS.items() if not types)
#: Placeholder types that stand for personal data; every other type is a secret type.
PII_PLACEHOLDERS = frozenset(t for types in ENTITY_PLACEHOLDERS.values() for t in types)


def entity_types(entity: str) -> tuple[str, ...]:
    """The placeholder types that cover a dataset entity label (see ``ENTITY_PLACEHOLDERS``)."""
    return ENTITY_PLACEHOLDERS.get(entity, (entity,))


# [TYPE] or [TYPE:pseudonym]; what the vault and the peer adapters write.
_PLACEHOLDER = re.compile(r"\[[A-Z][A-Z0-9_]*(?::[^\]\s]{1,80})?\]")
_CUT = "\x00"


def strip_placeholders(text: str) -> str:
    """``text`` with every placeholder replaced by a NUL (which no value contains)."""
    return _PLACEHOLDER.sub(_CUT, text)


def survives(value: str, output: str) -> bool:
    """Whether ``value``, or a fragment of half of it (8 characters at least), is in ``output``.

    ``output`` should already have its placeholders stripped.
    """
    if not value:
        return False
    if value in output:
        return True
    size = max(8, math.ceil(len(value) / 2))
    if size >= len(value):
        return False
    return any(value[i : i + size] in output for i in range(len(value) - size + 1))


# ---------------------------------------------------------------------------------------------
# Events -> the text a reader of the stored records sees

_NAMED_KEYS = {"Enter": "\n", "Return": "\n", "Tab": "\t", "Space": " ", "Spacebar": " "}


def _target(event: dict[str, Any]) -> tuple[Any, ...]:
    field_info = event.get("field") or {}
    return (event.get("app"), event.get("window_title"), field_info.get("label"))


def _strings(node: Any) -> Iterable[str]:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))


def events_view(events: Sequence[dict[str, Any]]) -> str:
    """The readable text of (stored or collector-format) events; see the module docstring."""
    typed: dict[tuple[Any, ...], list[str]] = {}
    lines: list[str] = []
    for event in events:
        kind = event.get("kind")
        data = event.get("data") or {}
        for key in ("window_title", "url"):
            if isinstance(event.get(key), str):
                lines.append(event[key])
        label = (event.get("field") or {}).get("label")
        if isinstance(label, str):
            lines.append(label)
        if kind == "key":
            buffer = typed.setdefault(_target(event), [])
            key = data.get("key")
            if not isinstance(key, str):
                continue
            if key == "Backspace":
                if buffer:
                    buffer.pop()
            elif key in _NAMED_KEYS:
                buffer.append(_NAMED_KEYS[key])
            elif len(key) == 1:
                buffer.append(key)
        elif kind == "key_run":
            typed.setdefault(_target(event), []).append(str(data.get("text", "")))
        elif kind == "clipboard":
            lines.append(str(data.get("text", "")))
        elif kind == "custom":
            lines.extend(_strings(data))
        elif kind == "screenshot":
            lines.extend(str(r.get("reason")) for r in data.get("regions", []) if r.get("reason"))
    # Titles, URLs and labels repeat on every key event: each distinct line once.
    return "\n".join(["".join(buffer) for buffer in typed.values()] + list(dict.fromkeys(lines)))


# ---------------------------------------------------------------------------------------------
# Scoring


@dataclass(slots=True)
class SampleResult:
    """What one sample contributed: positive units scored (entity, hit) and a false positive."""

    sample: Sample
    units: list[tuple[str, bool]] = field(default_factory=list)
    false_positive: bool = False
    fired: dict[str, int] = field(default_factory=dict)
    mode: str = "text"
    output: str = ""


def _redact(
    sample: Sample, redactor: Redactor, use_events: bool
) -> tuple[str, str, dict[str, int], str]:
    """(input view, output view, counts, mode) of one sample."""
    redact_events: Callable[..., Any] | None = getattr(redactor, "redact_events", None)
    if use_events and sample.events and redact_events is not None:
        outcomes = redact_events(sample.events)
        counts: dict[str, int] = {}
        for _, found in outcomes:
            for kind, n in found.items():
                counts[kind] = counts.get(kind, 0) + n
        before = events_view(sample.events)
        after = events_view([body for body, _ in outcomes])
        return before, after, counts, "events"
    after_text, counts = redactor.redact_text(sample.text)
    return sample.text, after_text, dict(counts), "text"


def _pii_units(
    sample: Sample, before: str, after: str, fired: dict[str, int]
) -> list[tuple[str, bool]]:
    if not sample.spans:
        types = entity_types(sample.entity or "")
        hit = any(fired.get(t) for t in types)
        return [(e, hit) for e in (sample.entity or "UNKNOWN").split("|")]
    groups: dict[str, list[str]] = {}
    for span in sample.spans:
        groups.setdefault(sample.text[span.start : span.end], []).append(span.entity)
    units: list[tuple[str, bool]] = []
    for value, entities in groups.items():
        if value not in before:
            # The events spell the text differently (never for well-formed samples).
            hits = 0 if survives(value, after) else len(entities)
        else:
            remaining = after.count(value)
            gone = max(0, before.count(value) - remaining)
            if remaining == 0 and survives(value, after):
                gone = 0  # half of the value is still there: not redacted
            hits = min(len(entities), gone)
        units.extend((entity, index < hits) for index, entity in enumerate(entities))
    return units


def score_sample(sample: Sample, redactor: Redactor, *, use_events: bool = True) -> SampleResult:
    """Score one sample (see the module docstring)."""
    before, after_raw, fired, mode = _redact(sample, redactor, use_events)
    after = strip_placeholders(after_raw)
    result = SampleResult(sample=sample, fired=fired, mode=mode, output=after_raw)
    if sample.label == "secret":
        for value, span in zip(sample.values(), sample.spans, strict=True):
            result.units.append((span.entity or sample.rule, not survives(value, after)))
    elif sample.label == "not_secret":
        result.false_positive = any(n and not redactor.is_pii_type(t) for t, n in fired.items())
    elif sample.label == "pii":
        result.units = _pii_units(sample, before, after, fired)
    elif sample.label == "not_pii" and sample.entity is None:
        result.false_positive = any(n and redactor.is_pii_type(t) for t, n in fired.items())
    elif sample.label == "not_pii":
        result.false_positive = any(fired.get(t) for t in entity_types(sample.entity or ""))
    return result


def score_samples(
    samples: Iterable[Sample], redactor: Redactor, *, use_events: bool = True
) -> list[SampleResult]:
    """Score every sample."""
    return [score_sample(s, redactor, use_events=use_events) for s in samples]
