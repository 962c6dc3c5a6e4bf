"""Redaction speed and accuracy beside the peers, in one run: python -m bench.redaction_speed.

Peer requirements (optional; the command says so and still reports ours when one is missing):

    detect-secrets==1.5.0
    presidio-analyzer==2.2.366      (pulls phonenumbers; no NLP model is used or downloaded)

**Speed.** ``redact_event`` on realistic events (``bench.synthetic.realistic_events``: chat and
terminal key runs and pasted configs of 200-600 bytes, an app and a window title, one event in
ten holding a secret or personal datum), single process, events validated before the clock
starts. Beside it, on the same texts: our ``redact_text``; detect-secrets 1.5 with its default
plugins and filters, the texts written one per line to a file and scanned with ``scan_file``
(the file-scanning path; ``scan_line`` is its ad-hoc mode, which turns on "eager search" and
reports every word as a high-entropy string), on a third of the peers' lines (the slowest by
far, and steady); Presidio's predefined pattern recognizers called
directly (``recognizer.analyze(text, entities, nlp_artifacts=None)``), both a *core* set (e-mail,
phone, card, IBAN, IP, SSN, US passport and driver licence) and *all* pattern recognizers. Peers
are handed only the main text of each event (one "line") while ours redacts every field of the
event: the ratio favours the peers. Each case runs ``--repeats`` times (5 quick, 7 full),
interleaved; the table gives the median and the min-max. Cases work through their items in
batches of 1,000 (``BATCH``) and drop each batch's results, as ingest does (detect-secrets
scans its one file).

**Accuracy.** The same scorer as ``bench.redaction_eval`` on the dev file and the synthetic data,
every redactor on the samples' flat text (peers cannot take events): ours, detect-secrets (a
secret value it reports is replaced by ``[DETECT_SECRETS_TYPE]``; every type counts as a secret
type) and Presidio (all pattern recognizers; spans replaced by the mapped placeholder type, all
personal data). Each redactor's PII recall is on the entity types *it* supports.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import inspect
import json
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench import synthetic
from bench.redaction_eval import (
    DEFAULT_ENGINE,
    DEFAULT_SEED,
    VaultRedactor,
    build_report,
    load_samples,
)
from bench.redaction_samples import DEFAULT_DEV_PATH
from bench.redaction_scoring import ENTITY_PLACEHOLDERS, score_samples

__all__ = ["GOAL_EVENTS_PER_S", "REQUIREMENTS", "DetectSecretsRedactor", "PresidioRedactor", "main"]

#: The pip requirements of the peers, as measured (add them to a ``bench`` extra).
REQUIREMENTS = ("detect-secrets==1.5.0", "presidio-analyzer==2.2.366")
GOAL_EVENTS_PER_S = 50_000

MODES = {
    # (repeats, events for ours, lines for the peers, synthetic samples for accuracy)
    "quick": (5, 20_000, 600, 1_000),
    "full": (7, 100_000, 6_000, 3_000),
}


# ---------------------------------------------------------------------------------------------
# Peers behind the scorer's interface


class PeerUnavailable(RuntimeError):
    """A peer package is missing or failed to import."""


def _upper_type(name: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "_", name.upper()).strip("_")


class DetectSecretsRedactor:
    """detect-secrets 1.5, default plugins and filters, through ``scan_file``."""

    def __init__(self) -> None:
        try:
            from detect_secrets.core.scan import scan_file
            from detect_secrets.settings import default_settings
        except Exception as exc:
            raise PeerUnavailable(f"detect-secrets: {type(exc).__name__}: {exc}") from exc
        self._scan_file = scan_file
        self._settings = default_settings
        self.version = importlib.metadata.version("detect-secrets")
        self.name = f"detect-secrets {self.version}"
        self._dir = tempfile.TemporaryDirectory(prefix="bench-ds-")
        with self._settings():
            from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

            self._types = frozenset(
                "DETECT_SECRETS_" + _upper_type(t) for t in get_mapping_from_secret_type_to_class()
            )

    def scan_lines(self, lines: Sequence[str]) -> dict[int, list[tuple[str, str]]]:
        """Secrets per line index (0-based): (type, value). The lines must not hold newlines."""
        path = Path(self._dir.name) / "telemetry.txt"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        found: dict[int, list[tuple[str, str]]] = {}
        with self._settings():
            for secret in self._scan_file(str(path)):
                value = secret.secret_value or ""
                found.setdefault(secret.line_number - 1, []).append((secret.type, value))
        return found

    def redact_many(self, texts: Sequence[str]) -> list[tuple[str, dict[str, int]]]:
        """Redact many texts with one scan (texts may span lines)."""
        lines: list[str] = []
        owner: list[int] = []
        for index, text in enumerate(texts):
            for line in text.split("\n"):
                lines.append(line)
                owner.append(index)
        found = self.scan_lines(lines)
        per_text: list[list[tuple[str, str]]] = [[] for _ in texts]
        for line_index, items in found.items():
            per_text[owner[line_index]].extend(items)
        out = []
        for text, items in zip(texts, per_text, strict=True):
            counts: dict[str, int] = {}
            redacted = text
            for kind, value in sorted(items, key=lambda kv: -len(kv[1])):
                placeholder = "DETECT_SECRETS_" + _upper_type(kind)
                if value and value in redacted:
                    redacted = redacted.replace(value, f"[{placeholder}]")
                counts[placeholder] = counts.get(placeholder, 0) + 1
            out.append((redacted, counts))
        return out

    def redact_text(self, text: str) -> tuple[str, dict[str, int]]:
        """One text (slow: a file per call; the scorer batches through ``redact_many``)."""
        return self.redact_many([text])[0]

    def produces(self) -> frozenset[str]:
        """Every detect-secrets secret type."""
        return self._types

    def is_pii_type(self, kind: str) -> bool:  # noqa: ARG002 - the protocol's signature
        """detect-secrets finds secrets only."""
        return False


# Presidio entity names that differ from the dataset's / the vault's.
_PRESIDIO_NAMES = {
    "EMAIL_ADDRESS": "EMAIL",
    "PHONE_NUMBER": "PHONE",
    "IBAN_CODE": "IBAN",
    "SG_NRIC_FIN": "FIN",
    "CRYPTO": "CRYPTO_WALLET",
}
_CORE = (
    "EmailRecognizer",
    "PhoneRecognizer",
    "CreditCardRecognizer",
    "IbanRecognizer",
    "IpRecognizer",
    "UsSsnRecognizer",
    "UsPassportRecognizer",
    "UsLicenseRecognizer",
)


def _presidio_type(entity: str) -> str:
    name = _PRESIDIO_NAMES.get(entity, entity)
    types = ENTITY_PLACEHOLDERS.get(name, (name,))
    return types[0] if types else name


def _offline_tldextract() -> None:
    """Presidio's e-mail check calls ``tldextract.extract``, which by default fetches the public
    suffix list over the network on first use: use the snapshot bundled with tldextract instead
    (no run-time downloads)."""
    try:
        import tldextract.tldextract as tld
    except ImportError:
        return
    tld.TLD_EXTRACTOR = tld.TLDExtract(suffix_list_urls=(), fallback_to_snapshot=True)


class PresidioRedactor:
    """Presidio's predefined pattern recognizers (and the phonenumbers-based phone one)."""

    def __init__(self, which: str = "all") -> None:
        try:
            from presidio_analyzer import PatternRecognizer
            from presidio_analyzer import predefined_recognizers as predefined
        except Exception as exc:
            raise PeerUnavailable(f"presidio-analyzer: {type(exc).__name__}: {exc}") from exc
        self.version = importlib.metadata.version("presidio-analyzer")
        _offline_tldextract()
        self.recognizers: list[Any] = []
        self.skipped: list[str] = []
        for name in sorted(dir(predefined)):
            cls = getattr(predefined, name)
            if not inspect.isclass(cls):
                continue
            if not (issubclass(cls, PatternRecognizer) or name == "PhoneRecognizer"):
                continue
            if which == "core" and name not in _CORE:
                continue
            try:
                self.recognizers.append(cls())
            except Exception as exc:
                self.skipped.append(f"{name} ({type(exc).__name__})")
        self.name = (
            f"presidio-analyzer {self.version} ({which}: {len(self.recognizers)} recognizers)"
        )
        self._types = frozenset(
            _presidio_type(e) for r in self.recognizers for e in r.supported_entities
        )

    def find(self, text: str) -> list[tuple[int, int, str]]:
        """(start, end, entity) of every result with a score above zero."""
        out = []
        for recognizer in self.recognizers:
            for result in recognizer.analyze(text, recognizer.supported_entities, None) or ():
                if result.score > 0:
                    out.append((result.start, result.end, result.entity_type))
        return out

    def redact_text(self, text: str) -> tuple[str, dict[str, int]]:
        """Replace non-overlapping results, longest first, by ``[TYPE]``."""
        taken: list[tuple[int, int, str]] = []
        for start, end, entity in sorted(self.find(text), key=lambda r: (r[0] - r[1], r[0])):
            if all(end <= s or start >= e for s, e, _ in taken):
                taken.append((start, end, _presidio_type(entity)))
        counts: dict[str, int] = {}
        for start, end, kind in sorted(taken, reverse=True):
            text = f"{text[:start]}[{kind}]{text[end:]}"
            counts[kind] = counts.get(kind, 0) + 1
        return text, counts

    def produces(self) -> frozenset[str]:
        """The mapped types of every recognizer loaded."""
        return self._types

    def is_pii_type(self, kind: str) -> bool:  # noqa: ARG002 - the protocol's signature
        """Presidio finds personal data only."""
        return True


class _Batched:
    """Feeds detect-secrets every sample text in one scan, then answers per text."""

    def __init__(self, peer: DetectSecretsRedactor, texts: Sequence[str]) -> None:
        self._peer = peer
        self._answers = dict(zip(texts, peer.redact_many(texts), strict=True))
        self.name = peer.name

    def redact_text(self, text: str) -> tuple[str, dict[str, int]]:
        return self._answers[text] if text in self._answers else self._peer.redact_text(text)

    def produces(self) -> frozenset[str]:
        return self._peer.produces()

    def is_pii_type(self, kind: str) -> bool:
        return self._peer.is_pii_type(kind)


# ---------------------------------------------------------------------------------------------
# Timing


def _time(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _time_both(fn: Callable[[], Any]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process): on a machine shared with other work the CPU
    time is the steadier figure (waiting for a core is not counted)."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


#: Items per call of a case's loop, whose results are dropped after each: ingest redacts a
#: batch (at most 1,000 events) and lets it go once stored. Keeping all 20,000 results alive
#: until the end instead made each full garbage collection walk them (about 5 % of our rate).
BATCH = 1000


def _batched(fn: Callable[[Any], Any], items: Sequence[Any]) -> Callable[[], None]:
    """A case's loop: ``fn`` on every item, ``BATCH`` items at a time, the results dropped."""

    def run() -> None:
        for start in range(0, len(items), BATCH):
            results = [fn(item) for item in items[start : start + BATCH]]
            del results

    return run


def _stats(rates: list[float]) -> dict[str, float]:
    return {"median": statistics.median(rates), "min": min(rates), "max": max(rates)}


def measure_speed(
    mode: str, engine: str, repeats: int | None = None
) -> tuple[dict[str, Any], list[str]]:
    """Throughput of ours and the peers, interleaved; returns (results, notes)."""
    reps, n_ours, n_peer, _ = MODES[mode]
    reps = repeats or reps
    notes: list[str] = []
    ours = VaultRedactor(engine)
    raw = synthetic.realistic_events(n_ours, seed=DEFAULT_SEED)
    events = [ours._event_model.model_validate(e) for e in raw]
    texts = [e["data"]["text"] for e in raw]
    sizes = [len(t.encode()) for t in texts]
    peer_texts = texts[:n_peer]
    peer_lines = [t.replace("\n", " ") for t in peer_texts]  # one event = one line
    cases: dict[str, tuple[Callable[[], Any], int, str]] = {
        "ours redact_event": (
            _batched(ours.module.redact_event, events),
            len(events),
            "events/s",
        ),
        "ours redact_text": (
            _batched(ours.module.redact_text, texts),
            len(texts),
            "lines/s",
        ),
    }
    peers: dict[str, str] = {}
    try:
        ds = DetectSecretsRedactor()
        # ~260 lines/s here: a third of the peers' lines is ~0.7 s of steady scanning.
        ds_lines = peer_lines[: n_peer // 3]
        cases["detect-secrets scan_file"] = (
            lambda: ds.scan_lines(ds_lines),
            len(ds_lines),
            "lines/s",
        )
        peers["detect-secrets"] = ds.name
    except PeerUnavailable as exc:
        notes.append(f"PEER MISSING: {exc} (pip install {REQUIREMENTS[0]})")
    try:
        core = PresidioRedactor("core")
        every = PresidioRedactor("all")
        cases["presidio core patterns"] = (
            _batched(core.find, peer_texts),
            n_peer,
            "lines/s",
        )
        cases["presidio all patterns"] = (
            _batched(every.find, peer_texts[: n_peer // 3]),
            n_peer // 3,
            "lines/s",
        )
        peers["presidio core"] = core.name
        peers["presidio all"] = every.name
        if every.skipped:
            notes.append(f"presidio recognizers that failed to load: {every.skipped}")
    except PeerUnavailable as exc:
        notes.append(f"PEER MISSING: {exc} (pip install {REQUIREMENTS[1]})")

    for fn, _, _ in cases.values():  # warm-up: imports, compiled patterns, caches
        fn()
    # What is loaded by now (the peers' libraries and models, the workload, the engines'
    # caches) lives as long as the process: frozen, the collector no longer walks it again in
    # every full collection (one walk cost 0.1-0.4 s here and landed in a timed repetition
    # now and then, cutting its rate by a third). All cases run frozen alike.
    gc.collect()
    gc.freeze()
    rates: dict[str, list[float]] = {name: [] for name in cases}
    cpu_rates: dict[str, list[float]] = {name: [] for name in cases}
    order = list(cases)
    for rep in range(reps):
        for name in order if rep % 2 == 0 else reversed(order):
            fn, count, _ = cases[name]
            gc.collect()  # as the runner does before each timed section
            wall, cpu = _time_both(fn)
            rates[name].append(count / wall)
            cpu_rates[name].append(count / max(cpu, 1e-9))
        print(f"  speed repetition {rep + 1}/{reps} done", file=sys.stderr)
    gc.unfreeze()
    results = {
        name: {
            **_stats(rates[name]),
            "unit": cases[name][2],
            "items": cases[name][1],
            "repeats": reps,
            "samples": rates[name],
            "cpu_median": statistics.median(cpu_rates[name]),
            "cpu_samples": cpu_rates[name],
        }
        for name in cases
    }
    results["_workload"] = {
        "events": len(events),
        "text_bytes": {"min": min(sizes), "median": statistics.median(sizes), "max": max(sizes)},
        "peers": peers,
    }
    return results, notes


def measure_accuracy(mode: str, engine: str, data: list[Path], seed: int) -> dict[str, Any]:
    """Dev + synthetic accuracy of ours and the peers, all on flat text, one scorer."""
    n_synth = MODES[mode][3]
    samples = load_samples(data, n_synth, seed)
    redactors: list[Any] = [VaultRedactor(engine)]
    out: dict[str, Any] = {"samples": len(samples), "synthetic": n_synth, "redactors": {}}
    try:
        ds = DetectSecretsRedactor()
        redactors.append(_Batched(ds, [s.text for s in samples]))
    except PeerUnavailable as exc:
        out["redactors"]["detect-secrets"] = {"error": str(exc)}
    try:
        redactors.append(PresidioRedactor("all"))
    except PeerUnavailable as exc:
        out["redactors"]["presidio"] = {"error": str(exc)}
    for redactor in redactors:
        started = time.perf_counter()
        report = build_report(score_samples(samples, redactor, use_events=False), redactor)
        parts = {
            name: {
                "secret_recall": p.secrets.recall,
                "secret_fp_rate": p.secrets.fp_rate,
                "secret_units": p.secrets.units,
                "pii_recall_supported": p.pii_supported.recall,
                "pii_fp_rate_supported": p.pii_supported.fp_rate,
                "pii_units_supported": p.pii_supported.units,
            }
            for name, p in report.parts.items()
        }
        out["redactors"][redactor.name] = {
            "parts": parts,
            "supported_entities": sorted(e for e, ok in report.supported.items() if ok),
            "seconds": round(time.perf_counter() - started, 2),
        }
    return out


# ---------------------------------------------------------------------------------------------
# Output


def _rate(value: float) -> str:
    return f"{value:>12,.0f}"


def print_results(speed: dict[str, Any], accuracy: dict[str, Any] | None, notes: list[str]) -> None:
    """The tables on stdout."""
    workload = speed["_workload"]
    print(f"workload: {workload['events']} events, text bytes {workload['text_bytes']}")
    print(f"peers: {workload['peers'] or 'none available'}")
    for note in notes:
        print(f"note: {note}")
    print()
    print("== redaction speed (single process) ==")
    print(f"{'case':28} {'median':>12} {'min - max':>25}  {'unit':9} reps {'CPU-time median':>16}")
    for name, r in speed.items():
        if name.startswith("_"):
            continue
        cpu = f"{r['cpu_median']:>16,.0f}" if "cpu_median" in r else ""
        print(
            f"{name:28} {_rate(r['median'])} {r['min']:>12,.0f} - {r['max']:<10,.0f}"
            f"  {r['unit']:9} {r['repeats']:4} {cpu}"
        )
    ours = speed["ours redact_event"]["median"]
    ours_text = speed["ours redact_text"]["median"]
    print()
    for peer in ("detect-secrets scan_file", "presidio core patterns", "presidio all patterns"):
        if peer in speed:
            theirs = speed[peer]["median"]
            print(
                f"ratio ours/{peer:26} events {ours / theirs:8.1f}x"
                f"   lines {ours_text / theirs:8.1f}x"
            )
        else:
            print(f"ratio ours/{peer:26} n/a (peer not available)")
    status = "PASS" if ours >= GOAL_EVENTS_PER_S else "MISS"
    print(f"goal: redact_event >= {GOAL_EVENTS_PER_S:,} events/s per core: {ours:,.0f}  {status}")
    cpu = speed["ours redact_event"].get("cpu_median")
    if cpu is not None:
        status = "PASS" if cpu >= GOAL_EVENTS_PER_S else "MISS"
        print(
            f"      same, per CPU-second of this process (steadier on a shared machine): "
            f"{cpu:,.0f}  {status}"
        )
    if accuracy is None:
        return
    print()
    print(
        f"== accuracy on flat text, same scorer ({accuracy['samples']} samples: dev + "
        f"{accuracy['synthetic']} synthetic) =="
    )
    print(f"{'redactor':58} {'part':10} {'secret R':>8} {'FP':>6} {'PII R':>6} {'PII FP':>6}")
    for name, r in accuracy["redactors"].items():
        if "error" in r:
            print(f"{name:58} not available: {r['error']}")
            continue
        for part, m in r["parts"].items():
            cells = [
                m["secret_recall"],
                m["secret_fp_rate"],
                m["pii_recall_supported"],
                m["pii_fp_rate_supported"],
            ]
            text = " ".join("     -" if c is None else f"{c:6.3f}" for c in cells)
            print(f"{name[:58]:58} {part:10} {text}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m bench.redaction_speed``."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.redaction_speed",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--quick",
        dest="mode",
        action="store_const",
        const="quick",
        help="5 repetitions, 20k events (default)",
    )
    size.add_argument(
        "--full", dest="mode", action="store_const", const="full", help="7 repetitions, 100k events"
    )
    parser.add_argument("--repeats", type=int, default=None, help="override the repetitions")
    parser.add_argument("--no-accuracy", action="store_true", help="speed only")
    parser.add_argument(
        "--data",
        type=Path,
        nargs="*",
        default=None,
        help=f"labelled JSONL for accuracy (default {DEFAULT_DEV_PATH})",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--engine", default=DEFAULT_ENGINE)
    parser.add_argument("--json", type=Path, default=None, metavar="OUT")
    args = parser.parse_args(argv)
    mode = args.mode or "quick"
    data = args.data
    if data is None:
        data = [DEFAULT_DEV_PATH] if DEFAULT_DEV_PATH.exists() else []
    try:
        speed, notes = measure_speed(mode, args.engine, args.repeats)
    except ImportError as exc:
        print(f"error: cannot import the redaction engine {args.engine!r}: {exc}", file=sys.stderr)
        return 2
    accuracy = None if args.no_accuracy else measure_accuracy(mode, args.engine, data, args.seed)
    print_results(speed, accuracy, notes)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "mode": mode,
            "requirements": REQUIREMENTS,
            "speed": speed,
            "accuracy": accuracy,
            "notes": notes,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"\nJSON report: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
