"""The redaction benchmark's scorer and synthetic generator (bench/redaction_*.py, synthetic)."""

from __future__ import annotations

import re

import pytest

from bench import synthetic
from bench.redaction_eval import build_report
from bench.redaction_samples import Sample, Span, derive_secret_span
from bench.redaction_scoring import (
    PII_PLACEHOLDERS,
    events_view,
    score_sample,
    score_samples,
    strip_placeholders,
    survives,
)

GH = "ghp_" + "A" * 36


class _Fake:
    """A redactor that replaces everything, or nothing, or every digit run, by a placeholder."""

    def __init__(self, name: str, kind: str = "SECRET") -> None:
        self.name = name
        self.kind = kind

    def redact_text(self, text: str) -> tuple[str, dict[str, int]]:
        if self.name == "all":
            return f"[{self.kind}]", {self.kind: 1}
        if self.name == "digits":
            out, n = re.subn(r"\d+", f"[{self.kind}]", text)
            return out, ({self.kind: n} if n else {})
        return text, {}

    def produces(self) -> frozenset[str]:
        return frozenset({self.kind})

    def is_pii_type(self, kind: str) -> bool:
        return kind in PII_PLACEHOLDERS


def _secret(text: str, value: str, label: str = "secret") -> Sample:
    start = text.find(value)
    spans = (Span(start, start + len(value), "rule"),) if label == "secret" else ()
    return Sample(id=text, source="synthetic", rule="rule", label=label, text=text, spans=spans)


def _pii(text: str, values: list[str], entity: str = "CREDIT_CARD", label: str = "pii") -> Sample:
    spans = tuple(Span(text.find(v), text.find(v) + len(v), entity) for v in values)
    return Sample(
        id=text, source="synthetic", rule=entity, label=label, text=text, entity=entity, spans=spans
    )


SAMPLES = [
    _secret(f"export TOKEN={GH}", GH),
    _secret("password=hunter2hunter2", "hunter2hunter2"),
    _secret("nothing to see here", "", label="not_secret"),
    _pii(
        "card 4111 1111 1111 1111 and 5500 0000 0000 0004",
        ["4111 1111 1111 1111", "5500 0000 0000 0004"],
    ),
    _pii("order 1234", [], label="not_pii"),
]


def test_redact_everything_gives_full_recall_and_counts_false_positives() -> None:
    report = build_report(score_samples(SAMPLES, _Fake("all", "SECRET")), _Fake("all"))
    assert report.parts["all"].secrets.recall == 1.0
    assert report.parts["all"].secrets.fp_rate == 1.0  # a secret type fired on the negative
    assert report.by_entity["CREDIT_CARD"].hits == 2
    # "SECRET" is no card placeholder: the card entity is unsupported, its negative no FP.
    assert report.by_entity["CREDIT_CARD"].fps == 0
    assert report.supported["CREDIT_CARD"] is False


def test_redact_everything_as_pii_counts_pii_false_positives_only() -> None:
    redactor = _Fake("all", "CREDIT_CARD")
    report = build_report(score_samples(SAMPLES, redactor), redactor)
    assert report.parts["all"].pii_supported.recall == 1.0
    assert report.parts["all"].pii_supported.fp_rate == 1.0
    assert report.parts["all"].secrets.fp_rate == 0.0  # a PII placeholder is no secret FP


def test_redact_nothing_gives_zero_recall_and_no_false_positive() -> None:
    report = build_report(score_samples(SAMPLES, _Fake("none")), _Fake("none"))
    assert report.parts["all"].secrets.recall == 0.0
    assert report.parts["all"].secrets.fp_rate == 0.0
    assert report.by_entity["CREDIT_CARD"].recall == 0.0


def test_partial_redaction_of_a_secret_is_a_miss() -> None:
    class Prefix(_Fake):
        def redact_text(self, text: str) -> tuple[str, dict[str, int]]:
            return text.replace(GH[:8], "[SECRET]"), {"SECRET": 1}

    result = score_sample(SAMPLES[0], Prefix("prefix"))
    assert result.units == [("rule", False)]


def test_digit_redactor_hits_cards_spans_one_by_one() -> None:
    text = "two cards 4111111111111111 and 4111111111111111, one order 77"
    sample = _pii(text, ["4111111111111111", "4111111111111111"])
    result = score_sample(sample, _Fake("digits", "CREDIT_CARD"))
    assert [hit for _, hit in result.units] == [True, True]


def test_survives_and_placeholders() -> None:
    assert survives("abcdefghijklmnop", "xx abcdefghij yy")  # 10 of 16 characters left
    assert not survives("abcdefghijklmnop", "xx abcdefg yy")
    assert not survives("[EMAIL]", strip_placeholders("[EMAIL]"))
    assert strip_placeholders("a [EMAIL:3f9a] b [IBAN]") == "a \x00 b \x00"


def test_events_view_replays_backspaces_and_joins_runs() -> None:
    target = {"app": "Terminal", "window_title": "zsh"}
    events = [
        {"kind": "key", "data": {"key": k}, **target} for k in ["a", "x", "Backspace", "b", "Enter"]
    ] + [{"kind": "key_run", "data": {"text": "cd"}, **target}]
    assert events_view(events).split("\n")[0] == "ab"
    assert "zsh" in events_view(events)


def test_secret_span_derivation() -> None:
    span, method = derive_secret_span("https://user:s3cr3tpass@host.example", "basic_auth")
    assert (method, "https://user:s3cr3tpass@host.example"[span.start : span.end]) == (
        "rule-pattern",
        "s3cr3tpass",
    )
    text = 'api_token: "Zx81kq0pLmN2"'
    span, method = derive_secret_span(text, "unknown_rule")
    assert (method, text[span.start : span.end]) == ("assignment", "Zx81kq0pLmN2")


@pytest.fixture(scope="module")
def generated() -> list[Sample]:
    return synthetic.generate(600, 11)


def test_generator_is_deterministic(generated: list[Sample]) -> None:
    again = synthetic.generate(600, 11)
    assert [(s.text, s.label, s.spans, s.events) for s in again] == [
        (s.text, s.label, s.spans, s.events) for s in generated
    ]
    assert synthetic.generate(50, 12)[0].text != generated[0].text or len(generated) == 600


def test_generator_spans_point_at_the_values(generated: list[Sample]) -> None:
    assert {s.label for s in generated} == {"secret", "not_secret", "pii", "not_pii"}
    for sample in generated:
        assert sample.spans, sample
        assert events_view(sample.events) == sample.text
        assert all(v for v in sample.values())


def _values(samples: list[Sample], label: str, entity: str) -> list[str]:
    return [v for s in samples if s.label == label and s.entity == entity for v in s.values()]


def test_planted_values_are_valid_and_near_misses_invalid() -> None:
    samples = synthetic.generate(3000, 5)
    cards = _values(samples, "pii", "CREDIT_CARD")
    ibans = _values(samples, "pii", "IBAN")
    ssns = _values(samples, "pii", "US_SSN")
    assert cards
    assert ibans
    assert ssns
    assert all(synthetic.luhn_valid(c) for c in cards)
    assert all(synthetic.iban_valid(i) for i in ibans)
    assert all(synthetic.ssn_valid(s) for s in ssns)
    near = {s.rule: [] for s in samples if s.label in ("not_pii", "not_secret")}
    for s in samples:
        if s.label in ("not_pii", "not_secret"):
            near[s.rule].extend(s.values())
    assert near["card_bad_luhn"]
    assert not any(synthetic.luhn_valid(c) for c in near["card_bad_luhn"])
    assert not any(synthetic.luhn_valid(c) for c in near["order_number"])
    assert near["iban_bad_check"]
    assert not any(synthetic.iban_valid(i) for i in near["iban_bad_check"])
    assert not any(synthetic.ssn_valid(s) for s in near["ssn_invalid_range"])
    tokens = [v for s in samples if s.rule in ("github_token", "npm_token") for v in s.values()]
    assert tokens
    assert all(synthetic.github_checksum_valid(t) for t in tokens)
    bad = near["github_token_bad_checksum"]
    assert bad
    assert not any(synthetic.github_checksum_valid(t) for t in bad)


def test_validators_on_known_values() -> None:
    assert synthetic.luhn_valid("4111 1111 1111 1111")
    assert not synthetic.luhn_valid("4111 1111 1111 1112")
    assert synthetic.iban_valid("GB82 WEST 1234 5698 7654 32")
    assert not synthetic.iban_valid("GB83 WEST 1234 5698 7654 32")
    assert synthetic.ssn_valid("123-45-6789")
    assert not synthetic.ssn_valid("666-45-6789")


def test_realistic_events_sizes() -> None:
    events = synthetic.realistic_events(200, seed=3)
    sizes = [len(e["data"]["text"].encode()) for e in events]
    assert len(events) == 200
    assert min(sizes) >= 150
    assert max(sizes) <= 650


# --- bench.synthetic_mci: the dev / held-out splits ---------------------------------------


def test_mci_splits_are_deterministic_and_distinct() -> None:
    from bench import synthetic_mci

    dev = synthetic_mci.generate(150, synthetic_mci.DEV)
    again = synthetic_mci.generate(150, synthetic_mci.DEV)
    held = synthetic_mci.generate(150, synthetic_mci.HELDOUT)
    assert [s.text for s in dev] == [s.text for s in again]
    assert {s.source for s in dev} == {"mci-dev"}
    assert {s.source for s in held} == {"mci-heldout"}
    assert not {s.text for s in dev} & {s.text for s in held}
    for sample in dev + held:
        assert sample.label in ("secret", "not_secret", "pii", "not_pii")
        for span in sample.spans:  # every planted value is where the span says
            assert sample.text[span.start : span.end]
        assert sample.events
    # the held-out mix weights code and config shapes more than the dev mix
    shapes = lambda samples: sum(s.scenario.split("/")[0] in ("code", "config") for s in samples)  # noqa: E731
    assert shapes(held) > shapes(dev)


def test_mci_covers_new_providers_international_pii_and_near_misses() -> None:
    from bench import synthetic_mci

    samples = synthetic_mci.generate(1200, synthetic_mci.DEV)
    rules = {s.rule for s in samples if s.label == "secret"}
    entities = {s.entity for s in samples if s.label == "pii"}
    negatives = {s.rule for s in samples if s.label in ("not_secret", "not_pii")}
    assert {"groq", "openrouter", "dynatrace", "hubspot", "github_token"} <= rules
    assert {"PHONE", "STREET_ADDRESS", "PASSPORT", "DRIVING_LICENCE", "IBAN"} <= entities
    assert {"uuid", "sha256", "version", "retina_file", "npm_scoped"} <= negatives


def test_eval_reports_each_part_with_goals() -> None:
    from bench import synthetic_mci
    from bench.redaction_eval import VaultRedactor

    samples = synthetic_mci.generate(80, synthetic_mci.DEV) + synthetic_mci.generate(
        80, synthetic_mci.HELDOUT
    )
    redactor = VaultRedactor()
    report = build_report(score_samples(samples, redactor), redactor)
    parts = {goal["part"] for goal in report.goals()}
    assert {"mci-dev", "heldout", "all"} <= parts
    assert "dev" not in parts  # no dev-file sample: no goal line for it
    assert set(report.rule_parts) == {"mci-dev", "heldout"}
    assert all(g["status"] in ("PASS", "MISS", "n/a") for g in report.goals())
