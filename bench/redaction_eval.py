"""Accuracy of the redaction engine on labelled data, with the goals of the redaction issue.

    python -m bench.redaction_eval [--data PATH...] [--synthetic N] [--seed S]
                                   [--mci-dev N] [--heldout N] [--json OUT]

Scores ``vault.domain.redaction`` (or ``--engine MODULE`` with the same API) on the dev file
(``../shared/data/redaction-dev.jsonl`` by default), on ``N`` samples of synthetic MCI-style
telemetry (``bench.synthetic``) and on the two splits of ``bench.synthetic_mci`` (``--mci-dev``,
tuned on, and ``--heldout``, never tuned on), then prints precision and recall per secret rule
and per personal-data entity (over all data, then per part: dev, synthetic, mci-dev, heldout),
the engine's placeholder firings, and the goals beside the figures, per part:

* secret recall >= 0.95;
* false positives on near-miss negatives <= 0.10 (secrets; the PII figure is shown likewise);
* PII recall >= 0.90 on the entity types the engine supports (the others are listed).

How a sample is scored is written in ``bench/redaction_scoring.py``; how a secret is located in
a dev sample that gives no span, in ``bench/redaction_samples.py``. Exit status 0 whether goals
pass or miss (a miss is a finding); 2 when the engine cannot be imported.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import synthetic, synthetic_mci
from bench.redaction_samples import DEFAULT_DEV_PATH, Sample, load_jsonl
from bench.redaction_scoring import (
    OUT_OF_SCOPE,
    PII_PLACEHOLDERS,
    Redactor,
    SampleResult,
    entity_types,
    score_samples,
)

__all__ = [
    "GOALS",
    "Counts",
    "Report",
    "VaultRedactor",
    "build_report",
    "load_samples",
    "main",
    "print_report",
]

DEFAULT_ENGINE = "vault.domain.redaction"
DEFAULT_SYNTHETIC = 2000
DEFAULT_SEED = 20260421
DEFAULT_MCI = 1500

#: (name, metric key, comparison, target), judged on each data part and on all data.
GOALS: tuple[tuple[str, str, str, float], ...] = (
    ("secret recall", "secret_recall", ">=", 0.95),
    ("secret FP on near-miss negatives", "secret_fp_rate", "<=", 0.10),
    ("PII recall, supported types", "pii_recall_supported", ">=", 0.90),
    ("PII FP on near-miss negatives, supported types", "pii_fp_rate_supported", "<=", 0.10),
)


class VaultRedactor:
    """The vault's engine behind the scorer's interface (text and events)."""

    def __init__(self, module_name: str = DEFAULT_ENGINE) -> None:
        self.module = importlib.import_module(module_name)
        from vault.domain.events import TelemetryEvent

        self._event_model = TelemetryEvent
        version = getattr(self.module, "RULES_VERSION", "?")
        self.name = f"vault {module_name} (rules {version})"
        self.declared = frozenset(getattr(self.module, "PLACEHOLDER_TYPES", ()) or ())
        self._batch = None
        self.event_path = "redact_event per event"
        for candidate in ("redact_batch", "redact_events"):
            if callable(getattr(self.module, candidate, None)):
                self._batch = getattr(self.module, candidate)
                self.event_path = f"{candidate}(list of events)"
                break

    def redact_text(self, text: str) -> tuple[str, dict[str, int]]:
        """The engine's ``redact_text``."""
        out, counts = self.module.redact_text(text)
        return out, dict(counts)

    def produces(self) -> frozenset[str]:
        """``PLACEHOLDER_TYPES`` of the engine."""
        return self.declared

    def is_pii_type(self, kind: str) -> bool:
        """Personal-data placeholder types (``redaction_scoring.PII_PLACEHOLDERS``)."""
        return kind in PII_PLACEHOLDERS

    def redact_events(
        self, events: Sequence[dict[str, Any]]
    ) -> list[tuple[dict[str, Any], dict[str, int]]]:
        """Validate the events as the API would, then redact them (batch API when present)."""
        parsed = [self._event_model.model_validate(e) for e in events]
        if self._batch is not None:
            try:
                outcomes = list(self._batch(parsed))
                if len(outcomes) == len(parsed):
                    return [(o.body, dict(o.counts)) for o in outcomes]
            except (TypeError, AttributeError):
                self._batch = None
                self.event_path = "redact_event per event (batch API signature not understood)"
        out = []
        for event in parsed:
            outcome = self.module.redact_event(event)
            out.append((outcome.body, dict(outcome.counts)))
        return out


# ---------------------------------------------------------------------------------------------
# Aggregation


@dataclass(slots=True)
class Counts:
    """Positive units and their hits; negative samples and their false positives."""

    units: int = 0
    hits: int = 0
    negatives: int = 0
    fps: int = 0

    @property
    def recall(self) -> float | None:
        """hits / positive units."""
        return self.hits / self.units if self.units else None

    @property
    def fp_rate(self) -> float | None:
        """false positives / negative samples."""
        return self.fps / self.negatives if self.negatives else None

    @property
    def precision(self) -> float | None:
        """hits / (hits + false positives), on this labelled set."""
        return self.hits / (self.hits + self.fps) if self.hits + self.fps else None

    def as_dict(self) -> dict[str, Any]:
        """Counts and rates, for the JSON report."""
        return {
            "units": self.units,
            "hits": self.hits,
            "recall": self.recall,
            "negatives": self.negatives,
            "false_positives": self.fps,
            "fp_rate": self.fp_rate,
            "precision": self.precision,
        }


@dataclass(slots=True)
class Part:
    """Figures of one slice of the data (dev, synthetic, all)."""

    secrets: Counts = field(default_factory=Counts)
    pii_supported: Counts = field(default_factory=Counts)
    pii_all: Counts = field(default_factory=Counts)

    def metrics(self) -> dict[str, float | None]:
        """The goal metrics."""
        return {
            "secret_recall": self.secrets.recall,
            "secret_fp_rate": self.secrets.fp_rate,
            "pii_recall_supported": self.pii_supported.recall,
            "pii_fp_rate_supported": self.pii_supported.fp_rate,
            "pii_recall_all_types": self.pii_all.recall,
        }


@dataclass(slots=True)
class Report:
    """Everything ``print_report`` prints and ``--json`` writes."""

    redactor: str
    mode: str
    samples: int
    by_rule: dict[str, Counts]
    by_entity: dict[str, Counts]
    supported: dict[str, bool]
    parts: dict[str, Part]
    firings: dict[str, dict[str, int]]
    examples: dict[str, list[dict[str, Any]]]
    span_methods: dict[str, int]
    scenarios: dict[str, Part] = field(default_factory=dict)
    #: The per-rule and per-entity figures of each part (dev, synthetic, mci-dev, heldout).
    rule_parts: dict[str, dict[str, Counts]] = field(default_factory=dict)
    entity_parts: dict[str, dict[str, Counts]] = field(default_factory=dict)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def goals(self) -> list[dict[str, Any]]:
        """Each goal on each part, with PASS/MISS (``n/a`` when the part has no such sample)."""
        out = []
        for part_name, part in self.parts.items():
            if not (part.secrets.units or part.secrets.negatives or part.pii_all.units):
                continue  # a part with no sample (e.g. no dev file)
            metrics = part.metrics()
            for name, key, op, target in GOALS:
                value = metrics[key]
                if value is None:
                    status = "n/a"
                else:
                    ok = value >= target if op == ">=" else value <= target
                    status = "PASS" if ok else "MISS"
                out.append(
                    {
                        "part": part_name,
                        "goal": name,
                        "value": value,
                        "target": f"{op} {target}",
                        "status": status,
                    }
                )
        return out

    def as_dict(self) -> dict[str, Any]:
        """The JSON report."""
        return {
            "redactor": self.redactor,
            "mode": self.mode,
            "samples": self.samples,
            "seconds": round(self.seconds, 3),
            "goals": self.goals(),
            "parts": {
                name: {
                    "secrets": p.secrets.as_dict(),
                    "pii_supported": p.pii_supported.as_dict(),
                    "pii_all_types": p.pii_all.as_dict(),
                }
                for name, p in self.parts.items()
            },
            "scenarios": {
                name: {"secrets": p.secrets.as_dict(), "pii_supported": p.pii_supported.as_dict()}
                for name, p in self.scenarios.items()
            },
            "secret_rules": {k: v.as_dict() for k, v in sorted(self.by_rule.items())},
            "secret_rules_per_part": {
                part: {k: v.as_dict() for k, v in sorted(rows.items())}
                for part, rows in self.rule_parts.items()
            },
            "pii_entities_per_part": {
                part: {k: v.as_dict() for k, v in sorted(rows.items())}
                for part, rows in self.entity_parts.items()
            },
            "pii_entities": {
                k: {**v.as_dict(), "supported": self.supported[k], "placeholders": entity_types(k)}
                for k, v in sorted(self.by_entity.items())
            },
            "unsupported_entities": sorted(k for k, ok in self.supported.items() if not ok),
            "placeholder_firings": self.firings,
            "span_methods": self.span_methods,
            "examples": self.examples,
            "notes": self.notes,
        }


#: The data parts, in print order: the shared dev file, bench.synthetic, and the two splits of
#: bench.synthetic_mci (tuned on mci-dev; heldout is read, never tuned on); "all" pools them.
PARTS = ("dev", "synthetic", "mci-dev", "heldout", "all")


def _part_of(sample: Sample) -> str:
    if sample.source.startswith("dev:"):
        return "dev"
    if sample.source == "mci-dev":
        return "mci-dev"
    if sample.source == "mci-heldout":
        return "heldout"
    return "synthetic"


def _example(result: SampleResult, what: str) -> dict[str, Any]:
    sample = result.sample
    return {
        "what": what,
        "id": sample.id,
        "scenario": sample.scenario,
        "text": sample.text[:300],
        "values": [v[:120] for v in sample.values()],
        "output": result.output[:300],
        "fired": result.fired,
    }


def build_report(
    results: Sequence[SampleResult], redactor: Redactor, *, examples: int = 5
) -> Report:
    """Aggregate per-sample results into per-rule, per-entity and per-part figures."""
    produced = set(redactor.produces())
    for result in results:
        produced.update(t for t, n in result.fired.items() if n)

    def supported(entity: str) -> bool:
        return entity not in OUT_OF_SCOPE and any(t in produced for t in entity_types(entity))

    by_rule: dict[str, Counts] = {}
    by_entity: dict[str, Counts] = {}
    parts = {name: Part() for name in PARTS}
    rule_parts: dict[str, dict[str, Counts]] = {name: {} for name in PARTS[:-1]}
    entity_parts: dict[str, dict[str, Counts]] = {name: {} for name in PARTS[:-1]}
    scenarios: dict[str, Part] = {}
    firings: dict[str, dict[str, int]] = {}
    shown: dict[str, list[dict[str, Any]]] = {}
    methods: dict[str, int] = {}
    modes: set[str] = set()

    def keep(key: str, result: SampleResult, what: str) -> None:
        bucket = shown.setdefault(key, [])
        if len(bucket) < examples:
            bucket.append(_example(result, what))

    for result in results:
        sample = result.sample
        modes.add(result.mode)
        methods[sample.span_method] = methods.get(sample.span_method, 0) + 1
        these = (
            parts[_part_of(sample)],
            parts["all"],
            scenarios.setdefault(f"{_part_of(sample)}/{sample.scenario}", Part()),
        )
        polarity = "positive" if sample.label in ("secret", "pii") else "negative"
        for kind, n in result.fired.items():
            if n:
                slot = firings.setdefault(kind, {"positive": 0, "negative": 0})
                slot[polarity] += 1
        part_rules = rule_parts[_part_of(sample)]
        part_entities = entity_parts[_part_of(sample)]
        if sample.label == "secret":
            counts = by_rule.setdefault(sample.rule, Counts())
            mine = part_rules.setdefault(sample.rule, Counts())
            for _, hit in result.units:
                for c in (counts, mine, *(p.secrets for p in these)):
                    c.units += 1
                    c.hits += hit
            if not all(hit for _, hit in result.units):
                keep(f"secret:{sample.rule}", result, "missed")
        elif sample.label == "not_secret":
            counts = by_rule.setdefault(sample.rule, Counts())
            mine = part_rules.setdefault(sample.rule, Counts())
            for c in (counts, mine, *(p.secrets for p in these)):
                c.negatives += 1
                c.fps += result.false_positive
            if result.false_positive:
                keep(f"secret:{sample.rule}", result, "false positive")
        elif sample.label == "pii":
            for entity, hit in result.units:
                counts = by_entity.setdefault(entity, Counts())
                mine = part_entities.setdefault(entity, Counts())
                targets = [counts, mine, *(p.pii_all for p in these)]
                if supported(entity):
                    targets += [p.pii_supported for p in these]
                for c in targets:
                    c.units += 1
                    c.hits += hit
                if not hit and supported(entity):
                    keep(f"pii:{entity}", result, "missed")
        elif sample.label == "not_pii":
            entity = sample.entity or "(any PII)"
            counts = by_entity.setdefault(entity, Counts())
            mine = part_entities.setdefault(entity, Counts())
            targets = [counts, mine, *(p.pii_all for p in these)]
            if entity == "(any PII)" or supported(entity):
                targets += [p.pii_supported for p in these]
            for c in targets:
                c.negatives += 1
                c.fps += result.false_positive
            if result.false_positive:
                keep(f"pii:{entity}", result, "false positive")

    support = {e: e == "(any PII)" or supported(e) for e in by_entity}
    return Report(
        redactor=redactor.name,
        mode="+".join(sorted(modes)),
        samples=len(results),
        by_rule=by_rule,
        by_entity=by_entity,
        supported=support,
        parts=parts,
        firings=dict(sorted(firings.items())),
        examples=shown,
        span_methods=methods,
        scenarios=dict(sorted(scenarios.items())),
        rule_parts={k: v for k, v in rule_parts.items() if v},
        entity_parts={k: v for k, v in entity_parts.items() if v},
    )


# ---------------------------------------------------------------------------------------------
# Output


def _f(value: float | None) -> str:
    return "   -" if value is None else f"{value:5.3f}"


def _table(title: str, rows: dict[str, Counts], extra: dict[str, str] | None = None) -> list[str]:
    lines = [
        f"== {title} ==",
        f"{'':36} {'pos':>6} {'hits':>6} {'recall':>6} {'neg':>6} {'FP':>5} {'FPrate':>6}"
        f" {'prec':>6}  {'':s}",
    ]
    for key, c in sorted(rows.items()):
        note = (extra or {}).get(key, "")
        lines.append(
            f"{key[:36]:36} {c.units:6d} {c.hits:6d} {_f(c.recall):>6} {c.negatives:6d}"
            f" {c.fps:5d} {_f(c.fp_rate):>6} {_f(c.precision):>6}  {note}"
        )
    return lines


def print_report(report: Report, *, show_examples: int = 0, out: Any = None) -> None:
    """The human-readable report on stdout."""
    out = out or sys.stdout
    lines = [
        f"redactor: {report.redactor}  (scored on {report.mode}; {report.samples} samples,"
        f" {report.seconds:.1f} s)"
    ]
    lines += [f"note: {n}" for n in report.notes]
    lines.append(f"secret span located by: {report.span_methods}")
    lines.append("")
    lines += _table(
        "secrets per rule (positives: samples; FP on not_secret samples)", report.by_rule
    )
    lines.append("")
    marks = {
        e: (
            "" if ok else ("not supported (out of scope)" if e in OUT_OF_SCOPE else "not supported")
        )
        for e, ok in report.supported.items()
    }
    lines += _table(
        "personal data per entity (positives: spans; FP on not_pii samples)",
        report.by_entity,
        marks,
    )
    lines.append("")
    for part, rows in report.rule_parts.items():
        secret_rows = {k: v for k, v in rows.items() if v.units or v.negatives}
        if secret_rows and len(report.rule_parts) > 1:
            lines += _table(f"secrets per rule, part {part}", secret_rows)
            lines.append("")
    for part, rows in report.entity_parts.items():
        if len(report.entity_parts) > 1:
            lines += _table(f"personal data per entity, part {part}", rows, marks)
            lines.append("")
    unsupported = sorted(e for e, ok in report.supported.items() if not ok)
    lines.append(
        f"unsupported entity types ({len(unsupported)}), shown above, excluded from "
        f"'supported' recall: {', '.join(unsupported)}"
    )
    lines.append("")
    lines.append("== placeholder firings (samples where the type fired) ==")
    for kind, slot in report.firings.items():
        kind_class = "pii" if kind in PII_PLACEHOLDERS else "secret"
        lines.append(
            f"{kind:28} {kind_class:6} on positives {slot['positive']:6d}"
            f"   on negatives {slot['negative']:6d}"
        )
    lines.append("")
    lines.append("== totals (per part; then per scenario of the events) ==")
    for name, part in [*report.parts.items(), *report.scenarios.items()]:
        if not (part.secrets.units or part.secrets.negatives or part.pii_all.units):
            continue
        lines.append(
            f"{name:24} secrets: recall {_f(part.secrets.recall)} ({part.secrets.hits}/"
            f"{part.secrets.units}), FP {_f(part.secrets.fp_rate)} ({part.secrets.fps}/"
            f"{part.secrets.negatives}) | PII supported: recall {_f(part.pii_supported.recall)}"
            f" ({part.pii_supported.hits}/{part.pii_supported.units}), FP"
            f" {_f(part.pii_supported.fp_rate)} ({part.pii_supported.fps}/"
            f"{part.pii_supported.negatives}) | PII all types: recall {_f(part.pii_all.recall)}"
        )
    lines.append("")
    lines.append("== goals (issue: redaction, item 8) ==")
    for goal in report.goals():
        value = "-" if goal["value"] is None else f"{goal['value']:.3f}"
        lines.append(
            f"{goal['part']:10} {goal['goal']:48} {value:>6}  goal {goal['target']:8}"
            f" {goal['status']}"
        )
    if show_examples:
        lines.append("")
        lines.append("== examples of misses and false positives ==")
        for key, items in sorted(report.examples.items()):
            for item in items[:show_examples]:
                lines.append(
                    f"[{key}] {item['what']} ({item['scenario']}): values={item['values']}"
                )
                lines.append(f"    output: {item['output'][:200]!r}")
    print("\n".join(lines), file=out)


# ---------------------------------------------------------------------------------------------
# Command


def load_samples(
    data: Sequence[Path], n_synthetic: int, seed: int, *, mci_dev: int = 0, heldout: int = 0
) -> list[Sample]:
    """The dev files' samples, ``n_synthetic`` generated ones (``bench.synthetic``), then
    ``mci_dev`` and ``heldout`` samples of ``bench.synthetic_mci``'s two splits."""
    samples = load_jsonl(data)
    if n_synthetic:
        samples += synthetic.generate(n_synthetic, seed)
    if mci_dev:
        samples += synthetic_mci.generate(mci_dev, synthetic_mci.DEV)
    if heldout:
        samples += synthetic_mci.generate(heldout, synthetic_mci.HELDOUT)
    return samples


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m bench.redaction_eval``."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.redaction_eval",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data",
        type=Path,
        nargs="*",
        default=None,
        help=f"labelled JSONL files (default {DEFAULT_DEV_PATH} if present)",
    )
    parser.add_argument(
        "--synthetic",
        type=int,
        default=DEFAULT_SYNTHETIC,
        metavar="N",
        help=f"synthetic samples to generate (default {DEFAULT_SYNTHETIC})",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="generator seed")
    parser.add_argument(
        "--mci-dev",
        type=int,
        default=DEFAULT_MCI,
        metavar="N",
        help=f"bench.synthetic_mci dev-split samples (default {DEFAULT_MCI})",
    )
    parser.add_argument(
        "--heldout",
        type=int,
        default=DEFAULT_MCI,
        metavar="N",
        help=f"bench.synthetic_mci held-out samples (default {DEFAULT_MCI}; never tune on them)",
    )
    parser.add_argument(
        "--json", type=Path, default=None, metavar="OUT", help="write a JSON report"
    )
    parser.add_argument(
        "--engine",
        default=DEFAULT_ENGINE,
        help="module with redact_text/redact_event (default %(default)s)",
    )
    parser.add_argument(
        "--text-only",
        action="store_true",
        help="score event-carried samples on their flat text (as peers are)",
    )
    parser.add_argument(
        "--examples",
        type=int,
        default=0,
        metavar="K",
        help="print K misses / false positives per rule",
    )
    args = parser.parse_args(argv)

    data = args.data
    if data is None:
        data = [DEFAULT_DEV_PATH] if DEFAULT_DEV_PATH.exists() else []
        if not data:
            print(f"note: {DEFAULT_DEV_PATH} not found; synthetic data only", file=sys.stderr)
    try:
        redactor = VaultRedactor(args.engine)
    except Exception as exc:
        print(
            f"error: cannot import the redaction engine {args.engine!r}: "
            f"{type(exc).__name__}: {exc}",
            file=sys.stderr,
        )
        return 2
    samples = load_samples(
        data, args.synthetic, args.seed, mci_dev=args.mci_dev, heldout=args.heldout
    )
    started = time.perf_counter()
    results = score_samples(samples, redactor, use_events=not args.text_only)
    report = build_report(results, redactor)
    report.seconds = time.perf_counter() - started
    report.notes.append(
        f"data: {[str(p) for p in data]} + {args.synthetic} synthetic "
        f"(seed {args.seed}) + {args.mci_dev} mci-dev (seed {synthetic_mci.DEV.seed}) + "
        f"{args.heldout} held-out (seed {synthetic_mci.HELDOUT.seed}); events redacted through "
        f"{redactor.event_path}"
    )
    if not redactor.declared:
        report.notes.append(
            "the engine declares no PLACEHOLDER_TYPES: supported types are those seen firing"
        )
    print_report(report, show_examples=args.examples)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report.as_dict(), indent=2, sort_keys=False) + "\n")
        print(f"\nJSON report: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
