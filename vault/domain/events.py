"""The telemetry event schema (CONTRACT.md "Telemetry event"), validated strictly.

Unknown fields are refused everywhere, so a typo cannot carry data into storage unseen. Sizes
are bounded here so that nothing downstream has to guess.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    model_validator,
)

__all__ = [
    "MAX_DATA_DEPTH",
    "MAX_TEXT",
    "Device",
    "EventKind",
    "FieldInfo",
    "TelemetryEvent",
    "epoch_of",
    "format_time",
    "parse_time",
    "parse_time_utc",
]

MAX_TEXT = 64 * 1024
MAX_SHORT = 2048
MAX_URL = 8192
MAX_PATH_POINTS = 10_000
#: How deep the free-form ``data`` of a ``custom`` event may nest (objects and lists): as deep
#: as the deepest body HTTP ingest can be set to read (``max_json_depth`` at most 256, less the
#: batch and the event), so that nothing HTTP takes is refused, while an imported row, which
#: no HTTP reader bounds, cannot nest deeper than the vault's own code can walk.
MAX_DATA_DEPTH = 254


_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)

_PLAIN_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?[+-]\d{2}:\d{2}")


def parse_time(value: object) -> datetime:
    """Parse a strict RFC 3339 timestamp with an offset; raises ValueError otherwise."""
    if not isinstance(value, str):
        raise ValueError("time must be an RFC 3339 string with a UTC offset")
    if _PLAIN_RFC3339.fullmatch(value):
        # The common form (upper-case T, numeric offset, at most 6 fractional digits), a subset
        # of what _RFC3339 accepts, is what fromisoformat reads as is; the normalization below
        # gives the same instant.
        return datetime.fromisoformat(value)
    if not _RFC3339.fullmatch(value):
        raise ValueError("time must be an RFC 3339 string with a UTC offset")
    text = value.upper().replace(" ", "T").replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:  # Python parses at most microseconds: trim extra fractional digits
        frac, offset = rest[:-6], rest[-6:]
        text = f"{head}.{frac[:6]}{offset}"
    # The offset is kept as sent: an instant whose UTC form falls outside the calendar is still a
    # valid RFC 3339 time, refused per event by the collection window (never stored).
    return datetime.fromisoformat(text)


def parse_time_utc(value: object) -> datetime:
    """:func:`parse_time`, normalized to UTC; ValueError when the instant has no UTC form."""
    try:
        return parse_time(value).astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("time out of range") from exc


AwareDatetime = Annotated[datetime, BeforeValidator(parse_time)]
Short = Annotated[str, Field(max_length=MAX_SHORT)]
Number = StrictInt | Annotated[float, Field(strict=True, allow_inf_nan=False)]


class EventKind(enum.StrEnum):
    """The kinds of event a collector may send."""

    KEY = "key"
    KEY_RUN = "key_run"
    CLICK = "click"
    MOUSE_MOVE = "mouse_move"
    SCROLL = "scroll"
    FOCUS = "focus"
    CLIPBOARD = "clipboard"
    SCREENSHOT = "screenshot"
    CUSTOM = "custom"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_max_length=MAX_TEXT)


class Device(_Strict):
    """The device an event came from."""

    id: Short | None = None
    owner: Literal["corporate", "personal"] = "corporate"


class FieldInfo(_Strict):
    """The input field that had focus (HTML input types)."""

    type: Annotated[str, Field(max_length=64)] = "text"
    label: Short | None = None


class KeyData(_Strict):
    key: Annotated[str, Field(min_length=1, max_length=64)]
    modifiers: Annotated[list[Annotated[str, Field(max_length=16)]], Field(max_length=8)] = []


class TextData(_Strict):
    text: Annotated[str, Field(max_length=MAX_TEXT)]


class ClickData(_Strict):
    x: Number
    y: Number
    button: Annotated[str, Field(max_length=16)] = "left"


class Point(_Strict):
    x: Number
    y: Number


class MoveData(_Strict):
    x: Number | None = None
    y: Number | None = None
    path: Annotated[list[Point], Field(max_length=MAX_PATH_POINTS)] | None = None

    @model_validator(mode="after")
    def _one_shape(self) -> MoveData:
        if self.path is None and (self.x is None or self.y is None):
            raise ValueError("mouse_move needs x and y, or a path")
        return self


class ScrollData(_Strict):
    dx: Number
    dy: Number


class Region(_Strict):
    x: StrictInt = Field(ge=0)
    y: StrictInt = Field(ge=0)
    w: StrictInt = Field(gt=0)
    h: StrictInt = Field(gt=0)
    reason: Short | None = None


class ScreenshotData(_Strict):
    blob_id: Annotated[str, Field(min_length=1, max_length=64)]
    regions: Annotated[list[Region], Field(max_length=256)] = []


class EmptyData(_Strict):
    pass


_DATA_MODELS: dict[EventKind, type[BaseModel]] = {
    EventKind.KEY: KeyData,
    EventKind.KEY_RUN: TextData,
    EventKind.CLIPBOARD: TextData,
    EventKind.CLICK: ClickData,
    EventKind.MOUSE_MOVE: MoveData,
    EventKind.SCROLL: ScrollData,
    EventKind.SCREENSHOT: ScreenshotData,
    EventKind.FOCUS: EmptyData,
}


# The two kinds that make most of the traffic (typed text and key strokes) have plain data:
# these give exactly what validating into their model and dumping it gives, for the data that
# is plainly valid, and None for anything else (which then goes through the model, for the
# same result or the model's own error).
def _fast_text(data: dict[str, Any]) -> dict[str, Any] | None:
    if len(data) != 1:
        return None
    text = data.get("text")
    if type(text) is not str or len(text) > MAX_TEXT or not _unicode_text(text):
        return None
    return {"text": text}


def _fast_key(data: dict[str, Any]) -> dict[str, Any] | None:
    key = data.get("key")
    if type(key) is not str or not 1 <= len(key) <= 64 or not _unicode_text(key):
        return None
    modifiers = data.get("modifiers", [])
    if len(data) != 1 + ("modifiers" in data) or type(modifiers) is not list or len(modifiers) > 8:
        return None
    if any(type(m) is not str or len(m) > 16 or not _unicode_text(m) for m in modifiers):
        return None
    return {"key": key, "modifiers": list(modifiers)}


_FAST_DATA = {
    EventKind.KEY_RUN: _fast_text,
    EventKind.CLIPBOARD: _fast_text,
    EventKind.KEY: _fast_key,
}


class TelemetryEvent(_Strict):
    """One event as a collector sends it.

    ``data`` is checked against the model of its ``kind``; for ``custom`` it is any JSON object
    (its depth and size are bounded by the strict JSON reader before it gets here).
    """

    subject: Annotated[str, Field(min_length=1, max_length=256)]
    time: AwareDatetime
    kind: EventKind
    device: Device | None = None
    jurisdiction: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] | None = None
    app: Short | None = None
    window_title: Short | None = None
    url: Annotated[str, Field(max_length=MAX_URL)] | None = None
    private_window: StrictBool = False
    field: FieldInfo | None = None
    data: dict[str, Any] = {}

    @model_validator(mode="after")
    def _check_data(self) -> TelemetryEvent:
        fast = _FAST_DATA.get(self.kind)
        if fast is not None:
            plain = fast(self.data)
            if plain is not None:
                object.__setattr__(self, "data", plain)
                return self
        model = _DATA_MODELS.get(self.kind)
        if model is None:
            problem = _json_problem(self.data)
            if problem is not None:
                raise ValueError(problem)
        else:
            # Re-validate into the kind's model and keep its normalized dict form.
            checked = model.model_validate(self.data)
            object.__setattr__(self, "data", checked.model_dump(exclude_none=True))
        return self

    def stored_form(self) -> dict[str, Any]:
        """The event as it is sealed: everything but ``subject`` (stored as a pseudonym).

        Built directly (a fresh dict the caller may change): it is on the ingest hot path, and
        equals ``model_dump(mode="json", exclude={"subject"}, exclude_none=True)`` with the time
        in :func:`format_time` form (a property test checks that).
        """
        # (str() of a StrEnum member is its value, at a third of the cost of ``.value``.)
        body: dict[str, Any] = {"time": format_time(self.time), "kind": str(self.kind)}
        device = self.device
        if device is not None:
            body["device"] = (
                {"owner": device.owner}
                if device.id is None
                else {"id": device.id, "owner": device.owner}
            )
        if self.jurisdiction is not None:
            body["jurisdiction"] = self.jurisdiction
        if self.app is not None:
            body["app"] = self.app
        if self.window_title is not None:
            body["window_title"] = self.window_title
        if self.url is not None:
            body["url"] = self.url
        body["private_window"] = self.private_window
        if self.field is not None:
            body["field"] = _present({"type": self.field.type, "label": self.field.label})
        # Kinds whose data model holds scalars only: a shallow copy is a whole copy.
        flat = self.kind in _FLAT_DATA
        body["data"] = dict(self.data) if flat else _copy_json(self.data)
        return body


def _present(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


_SCALARS = frozenset({str, int, float, bool, type(None)})
#: Kinds whose data (validated into its model) holds no list or object.
_FLAT_DATA = frozenset({EventKind.KEY_RUN, EventKind.CLIPBOARD, EventKind.CLICK, EventKind.SCROLL})


def _copy_json(value: Any) -> Any:
    """A deep copy of parsed JSON (``data`` of modelled kinds has no None values already)."""
    if isinstance(value, dict):
        return {k: v if v.__class__ in _SCALARS else _copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [v if v.__class__ in _SCALARS else _copy_json(v) for v in value]
    return value


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC with millisecond precision and a ``Z`` suffix (as
    ``isoformat(timespec="milliseconds")`` writes it, at about half its cost: this runs once per
    stored event and per record read)."""
    if value.tzinfo is not UTC:
        offset = value.utcoffset()
        if offset is None or offset:  # not UTC already (the common case needs no conversion)
            value = value.astimezone(UTC)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (  # noqa: UP031 - the fastest form here
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond // 1000,
    )


def epoch_of(value: datetime) -> int:
    """The UTC day number (days since 1970-01-01) an instant falls in: the key epoch."""
    return (value.astimezone(UTC).date() - _EPOCH_DAY).days


_EPOCH_DAY = datetime(1970, 1, 1, tzinfo=UTC).date()


def _unicode_text(text: str) -> bool:
    """Whether ``text`` is Unicode text that UTF-8 can hold: no lone surrogate, which a JSON
    ``\\ud800`` escape makes (pydantic's ``str`` refuses it; nothing could seal it)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _json_problem(value: Any) -> str | None:
    """Why ``value`` (the data of a kind without a model) is no JSON the vault can keep: a
    float that is NaN or infinite, text (a key or a value) that is not Unicode, or nesting
    deeper than :data:`MAX_DATA_DEPTH`; else None."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if not _unicode_text(item):
                return "data holds text that is not valid Unicode (a lone surrogate)"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return "data holds a number that is not finite"
        elif isinstance(item, dict | list):
            if depth > MAX_DATA_DEPTH:
                return f"data nests deeper than {MAX_DATA_DEPTH} levels"
            children: Iterable[Any] = item
            if isinstance(item, dict):
                if not all(_unicode_text(key) for key in item if isinstance(key, str)):
                    return "data holds text that is not valid Unicode (a lone surrogate)"
                children = item.values()
            stack.extend((child, depth + 1) for child in children)
    return None
