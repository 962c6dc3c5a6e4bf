"""Collection rules: refusals, their order, time boundaries, exclusion matching."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vault.domain.collection import (
    ACCEPTED,
    MAX_EXCLUSION_ENTRIES,
    REFUSAL_REASONS,
    Accepted,
    CollectionPolicy,
    Refused,
    decide_collection,
    url_host,
    validate_dataset_exclusions,
)
from vault.domain.events import TelemetryEvent, format_time
from vault.domain.exclusions import (
    ALWAYS_ON,
    BUILTIN_CATEGORIES,
    ExclusionMatcher,
    canonical_host,
    normalize_app_name,
    normalize_domain,
)

NOW = datetime(2026, 4, 21, 15, 0, 0, tzinfo=UTC)


def make_event(**overrides: Any) -> TelemetryEvent:
    raw: dict[str, Any] = {
        "subject": "emp-1042",
        "time": format_time(NOW - timedelta(minutes=5)),
        "kind": "focus",
        "device": {"id": "LT-88", "owner": "corporate"},
        "jurisdiction": "US",
        "app": "Slack",
        "window_title": "#infra - Slack",
        "url": "https://app.slack.com/client/T01/C02",
    }
    for key, value in overrides.items():
        if value is None:
            raw.pop(key, None)
        else:
            raw[key] = value
    return TelemetryEvent.model_validate(raw)


def make_policy(**overrides: Any) -> CollectionPolicy:
    values: dict[str, Any] = {
        "consent_mode": "opt_out",
        "retention_days": 30,
        "jurisdictions": None,
        "excluded_apps": frozenset(),
        "excluded_domains": frozenset(),
        "excluded_categories": frozenset(),
        "clock_skew_seconds": 300,
    }
    values.update(overrides)
    return CollectionPolicy(**values)


def decide(
    event: TelemetryEvent | None = None,
    policy: CollectionPolicy | None = None,
    consent: Literal["granted", "withdrawn"] | None = None,
    now: datetime = NOW,
) -> Accepted | Refused:
    return decide_collection(event or make_event(), policy or make_policy(), consent, now)


def reason(decision: Accepted | Refused) -> str | None:
    return decision.reason if isinstance(decision, Refused) else None


# --- the happy path ---------------------------------------------------------------------------


def test_an_ordinary_event_is_accepted() -> None:
    assert decide() == ACCEPTED
    assert isinstance(decide(), Accepted)


def test_every_refusal_code_is_in_the_stable_set() -> None:
    assert {
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
    } == REFUSAL_REASONS


def test_refused_rejects_an_unknown_reason() -> None:
    with pytest.raises(ValueError, match="unknown refusal reason"):
        Refused("because")


# --- consent ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "consent", "expected"),
    [
        ("opt_in", None, "consent_missing"),
        ("opt_in", "withdrawn", "consent_withdrawn"),
        ("opt_in", "granted", None),
        ("opt_out", None, None),
        ("opt_out", "granted", None),
        ("opt_out", "withdrawn", "consent_withdrawn"),
    ],
)
def test_consent_by_mode(
    mode: Literal["opt_in", "opt_out"],
    consent: Literal["granted", "withdrawn"] | None,
    expected: str | None,
) -> None:
    assert reason(decide(policy=make_policy(consent_mode=mode), consent=consent)) == expected


# --- device, private window, jurisdiction ---------------------------------------------------


def test_personal_device_is_refused() -> None:
    event = make_event(device={"id": "phone", "owner": "personal"})
    assert reason(decide(event)) == "personal_device"


def test_event_without_device_is_treated_as_corporate() -> None:
    assert decide(make_event(device=None)) == ACCEPTED


def test_private_window_flag_is_refused() -> None:
    assert reason(decide(make_event(private_window=True))) == "private_window"


@pytest.mark.parametrize(
    "title",
    [
        "New Tab — Mozilla Firefox Private Browsing",
        "Docs - Google Chrome (Incognito)",
        "New InPrivate tab - [InPrivate] - Microsoft Edge",
    ],
)
def test_private_window_markers_in_the_title_are_refused(title: str) -> None:
    assert reason(decide(make_event(window_title=title))) == "private_window"


@pytest.mark.parametrize(
    "title",
    [
        "How private browsing works - Google Chrome",
        "Incognito mode explained — Mozilla Firefox",
        "Private Browsing settings guide.pdf - Adobe Acrobat",
    ],
)
def test_ordinary_titles_mentioning_privacy_are_accepted(title: str) -> None:
    assert decide(make_event(window_title=title)) == ACCEPTED


def test_jurisdiction_outside_the_allow_list_is_refused() -> None:
    policy = make_policy(jurisdictions=frozenset({"DE", "FR"}))
    assert reason(decide(make_event(jurisdiction="US"), policy)) == "jurisdiction_not_allowed"
    assert decide(make_event(jurisdiction="FR"), policy) == ACCEPTED


def test_missing_jurisdiction_with_an_allow_list_is_refused() -> None:
    policy = make_policy(jurisdictions=frozenset({"US"}))
    assert reason(decide(make_event(jurisdiction=None), policy)) == "jurisdiction_missing"


def test_no_allow_list_accepts_any_or_no_jurisdiction() -> None:
    assert decide(make_event(jurisdiction="BR")) == ACCEPTED
    assert decide(make_event(jurisdiction=None)) == ACCEPTED


# --- excluded apps ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("app", "category"),
    [
        ("1Password", "password_managers"),
        ("1password 7", "password_managers"),
        ("Bitwarden", "password_managers"),
        ("KEEPASSXC", "password_managers"),
        ("KeePassXC.exe", "password_managers"),
        ("  Keychain   Access ", "password_managers"),
        ("LastPass", "password_managers"),
        ("Dashlane", "password_managers"),
        ("Chase", "banking"),
        ("Bank of America", "banking"),
        ("MyChart", "health"),
        ("Proton Mail", "personal_mail"),
    ],
)
def test_built_in_apps_are_refused_case_insensitively(app: str, category: str) -> None:
    decision = decide(make_event(app=app, url=None))
    assert isinstance(decision, Refused)
    assert decision.reason == "excluded_app"
    assert category in decision.detail


@pytest.mark.parametrize("app", ["Paper Chase Editor", "1Password Fan Site Builder", "Slack"])
def test_apps_only_match_whole_names(app: str) -> None:
    assert decide(make_event(app=app, url=None)) == ACCEPTED


def test_window_titles_are_not_searched_for_app_names() -> None:
    # Documented choice: only the app field is compared, to keep false positives low.
    event = make_event(app="Notes", window_title="Migrating from 1Password to Bitwarden")
    assert decide(event) == ACCEPTED


def test_dataset_apps_are_added_to_the_built_ins() -> None:
    policy = make_policy(excluded_apps=frozenset({"Spotify"}))
    decision = decide(make_event(app="spotify", url=None), policy)
    assert isinstance(decision, Refused)
    assert decision.reason == "excluded_app"
    assert "dataset" in decision.detail
    # The built-ins still apply: a dataset cannot remove them.
    assert reason(decide(make_event(app="1Password", url=None), policy)) == "excluded_app"


def test_refusal_detail_never_repeats_the_event_content() -> None:
    event = make_event(app="Secret Project Tracker", url="https://hr.example.com/case/42")
    policy = make_policy(
        excluded_apps=frozenset({"secret project tracker"}),
        excluded_domains=frozenset({"hr.example.com"}),
    )
    decision = decide(event, policy)
    assert isinstance(decision, Refused)
    assert "Secret" not in decision.detail
    assert "secret project" not in decision.detail.lower()
    decision = decide(make_event(url="https://hr.example.com/case/42"), policy)
    assert isinstance(decision, Refused)
    assert "hr.example" not in decision.detail


# --- excluded domains ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://chase.com/",
        "https://www.chase.com/login",
        "https://secure.verified.chase.com:8443/x?y=z#w",
        "HTTPS://WWW.CHASE.COM./",
        "https://user:pw@chase.com/",
        "https://evil.example@chase.com/",
        "chase.com/login",
        "www.chase.com",
        "//chase.com/x",
        "https:chase.com",
        "https:\\\\chase.com\\path",
        "https://ch%61se.com/",
        "https://\uff43\uff48\uff41\uff53\uff45.com/",
        "https://mail.google.com/mail/u/0/#inbox",
        "https://outlook.live.com/mail/",
        "https://mail.proton.me/u/0/inbox",
        "https://mychart.example-health.org/MyChart/",
        "https://www.webmd.com/a-to-z-guides",
        "https://my.1password.com/vaults",
        "https://vault.bitwarden.com/#/vault",
        "chrome-extension://nngceckbapebfimnlniiiahkandclblb/popup/index.html",
        "https://www.paypal.com/myaccount/summary",
    ],
)
def test_built_in_domains_and_subdomains_are_refused(url: str) -> None:
    assert reason(decide(make_event(app="Google Chrome", url=url))) == "excluded_domain"


@pytest.mark.parametrize(
    "url",
    [
        "https://notchase.com/",
        "https://chase.com.evil.example/",
        "https://chase.com@evil.example/",
        "https://evil.example/chase.com",
        "https://evil.example/?next=https://chase.com/",
        "https://www.google.com/search?q=chase.com",
        "https://docs.google.com/document/d/1",
        "https://outlook.office.com/mail/",
        "https://mycharts.example.org/",
        "mailto:someone@chase.com",
        "about:blank",
    ],
)
def test_lookalike_and_unrelated_hosts_are_accepted(url: str) -> None:
    assert decide(make_event(app="Google Chrome", url=url)) == ACCEPTED


def test_opt_in_categories_apply_only_when_configured() -> None:
    event = make_event(app="Google Chrome", url="https://www.reddit.com/r/python")
    assert decide(event) == ACCEPTED
    policy = make_policy(excluded_categories=frozenset({"personal_social"}))
    decision = decide(event, policy)
    assert isinstance(decision, Refused)
    assert decision.reason == "excluded_domain"
    assert "personal_social" in decision.detail
    assert reason(decide(make_event(app="Tinder", url=None), make_policy())) is None
    dating = make_policy(excluded_categories=frozenset({"dating"}))
    assert reason(decide(make_event(app="Tinder", url=None), dating)) == "excluded_app"


def test_dataset_domains_match_subdomains_too() -> None:
    policy = make_policy(excluded_domains=frozenset({"https://Intranet-HR.example.com:443/"}))
    assert policy.excluded_domains == frozenset({"intranet-hr.example.com"})
    event = make_event(url="https://payroll.intranet-hr.example.com/")
    assert reason(decide(event, policy)) == "excluded_domain"
    assert decide(make_event(url="https://intranet.example.com/"), policy) == ACCEPTED


def test_dataset_label_pattern_matches_any_parent_domain() -> None:
    policy = make_policy(excluded_domains=frozenset({"benefits.*"}))
    assert reason(decide(make_event(url="https://benefits.acme.io/"), policy)) == (
        "excluded_domain"
    )
    assert decide(make_event(url="https://benefitsplus.acme.io/"), policy) == ACCEPTED


def test_dataset_ipv6_domain_matches_the_literal() -> None:
    policy = make_policy(excluded_domains=frozenset({"[2001:DB8:0:0::1]"}))
    event = make_event(url="http://[2001:db8::1]:8080/admin")
    assert reason(decide(event, policy)) == "excluded_domain"


# --- time window -----------------------------------------------------------------------------


def test_time_window_boundaries_are_inclusive() -> None:
    policy = make_policy(retention_days=30, clock_skew_seconds=300)
    oldest = make_event(time=format_time(NOW - timedelta(days=30)))
    newest = make_event(time=format_time(NOW + timedelta(seconds=300)))
    assert decide(oldest, policy) == ACCEPTED
    assert decide(newest, policy) == ACCEPTED


def test_just_outside_the_window_is_refused() -> None:
    policy = make_policy(retention_days=30, clock_skew_seconds=300)
    too_old = make_event(time=format_time(NOW - timedelta(days=30, milliseconds=1)))
    in_future = make_event(time=format_time(NOW + timedelta(seconds=300, milliseconds=1)))
    assert reason(decide(too_old, policy)) == "too_old"
    assert reason(decide(in_future, policy)) == "in_future"


def test_time_compares_instants_not_wall_clocks() -> None:
    # 17:04+02:00 is 15:04Z: four minutes in the future, within a five-minute skew.
    event = make_event(time="2026-04-21T17:04:00+02:00")
    assert decide(event) == ACCEPTED
    assert reason(decide(event, make_policy(clock_skew_seconds=0))) == "in_future"


def test_zero_skew_accepts_exactly_now() -> None:
    event = make_event(time=format_time(NOW))
    assert decide(event, make_policy(clock_skew_seconds=0)) == ACCEPTED


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("9999-12-31T23:59:59-23:59", "in_future"),
        ("9999-12-31T23:59:59.999999999Z", "in_future"),
        ("0001-01-01T00:00:00+01:00", "too_old"),
    ],
)
def test_times_at_the_edge_of_the_calendar_are_refused_not_raised(
    stamp: str, expected: str
) -> None:
    # Their UTC form does not fit in a datetime: they must never reach storage.
    policy = make_policy(retention_days=100_000, clock_skew_seconds=86_400)
    assert reason(decide(make_event(time=stamp), policy)) == expected


def test_naive_now_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        decide(now=NOW.replace(tzinfo=None))


# --- order of the rules ----------------------------------------------------------------------


def test_first_refusal_wins_in_the_documented_order() -> None:
    policy = make_policy(consent_mode="opt_in", jurisdictions=frozenset({"DE"}))
    failing: dict[str, Any] = {
        "device": {"owner": "personal"},
        "private_window": True,
        "jurisdiction": "US",
        "app": "1Password",
        "url": "https://chase.com/",
        "time": format_time(NOW - timedelta(days=400)),
    }
    fixes: list[tuple[str, dict[str, Any], Literal["granted"] | None]] = [
        ("consent_missing", {}, None),
        ("personal_device", {}, "granted"),
        ("private_window", {"device": {"owner": "corporate"}}, "granted"),
        ("jurisdiction_not_allowed", {"private_window": False}, "granted"),
        ("excluded_app", {"jurisdiction": "DE"}, "granted"),
        ("excluded_domain", {"app": "Slack"}, "granted"),
        ("too_old", {"url": "https://example.com/"}, "granted"),
    ]
    for expected, fix, consent in fixes:
        failing.update(fix)
        assert reason(decide(make_event(**failing), policy, consent)) == expected
    failing["time"] = format_time(NOW)
    assert decide(make_event(**failing), policy, "granted") == ACCEPTED


def test_withdrawn_consent_wins_over_everything() -> None:
    event = make_event(device={"owner": "personal"}, private_window=True, app="1Password")
    assert reason(decide(event, consent="withdrawn")) == "consent_withdrawn"


def test_jurisdiction_missing_comes_before_exclusions() -> None:
    policy = make_policy(jurisdictions=frozenset({"US"}))
    event = make_event(jurisdiction=None, app="Bitwarden")
    assert reason(decide(event, policy)) == "jurisdiction_missing"


# --- policy validation -----------------------------------------------------------------------


def test_policy_normalizes_its_lists() -> None:
    policy = make_policy(
        jurisdictions=frozenset({"de", " fr "}),
        excluded_apps=frozenset({"  My   App  "}),
        excluded_domains=frozenset({"*.Example.COM."}),
        excluded_categories=frozenset({" Dating "}),
    )
    assert policy.jurisdictions == frozenset({"DE", "FR"})
    assert policy.excluded_apps == frozenset({"my app"})
    assert policy.excluded_domains == frozenset({"example.com"})
    assert policy.excluded_categories == frozenset({"dating"})


def test_policies_with_equal_settings_are_equal() -> None:
    assert make_policy() == make_policy()
    assert hash(make_policy()) == hash(make_policy())
    assert dataclasses.replace(make_policy(), retention_days=7).retention_days == 7


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"consent_mode": "maybe"}, "consent_mode"),
        ({"retention_days": 0}, "retention_days"),
        ({"retention_days": True}, "retention_days"),
        ({"retention_days": 10**9}, "retention_days"),
        ({"clock_skew_seconds": -1}, "clock_skew_seconds"),
        ({"clock_skew_seconds": 10**7}, "clock_skew_seconds"),
        ({"jurisdictions": frozenset()}, "non-empty"),
        ({"jurisdictions": frozenset({"USA"})}, "ISO 3166"),
        ({"excluded_categories": frozenset({"gambling"})}, "unknown exclusion category"),
        ({"excluded_domains": frozenset({"not a domain"})}, "malformed domain"),
        ({"excluded_apps": frozenset({"   "})}, "empty"),
    ],
)
def test_invalid_policies_are_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_policy(**overrides)


# --- validate_dataset_exclusions -------------------------------------------------------------


def test_validate_normalizes_everything() -> None:
    apps, domains, categories = validate_dataset_exclusions(
        ["Spotify", "SPOTIFY ", "Steam.exe"],
        [
            "https://Example.com:8443/path?q=1",
            "*.corp.example.org",
            "bücher.de",
            "mychart.*",
            "shop.example.com.",
            "[::1]",
        ],
        ["personal_social", "BANKING"],
    )
    assert apps == frozenset({"spotify", "steam"})
    assert domains == frozenset(
        {
            "example.com",
            "corp.example.org",
            "xn--bcher-kva.de",
            "mychart.*",
            "shop.example.com",
            "::1",
        }
    )
    assert categories == frozenset({"personal_social", "banking"})


def test_validate_accepts_empty_lists() -> None:
    assert validate_dataset_exclusions([], [], []) == (frozenset(), frozenset(), frozenset())


@pytest.mark.parametrize(
    "domain",
    [
        "",
        "   ",
        "exa mple.com",
        "-bad.com",
        "bad-.com",
        "a..b.com",
        "foo*.com",
        "*.*.example.com",
        "a.b.*",
        "user@example.com",
        "under_score.com",
        "x" * 64 + ".com",
        ".".join(["abcdefghij"] * 24),
        "[::zz]",
        "[::1",
        "https://",
    ],
)
def test_validate_refuses_malformed_domains(domain: str) -> None:
    with pytest.raises(ValueError, match=r"domain|IPv6|wildcards|label"):
        validate_dataset_exclusions([], [domain], [])


def test_validate_refuses_unknown_categories_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown exclusion category 'gambling'.*banking"):
        validate_dataset_exclusions([], [], ["gambling"])


def test_validate_refuses_empty_and_overlong_app_names() -> None:
    with pytest.raises(ValueError, match="empty"):
        validate_dataset_exclusions([""], [], [])
    with pytest.raises(ValueError, match="longer than"):
        validate_dataset_exclusions(["x" * 257], [], [])


def test_validate_limits_the_number_of_entries() -> None:
    names = [f"app{i}" for i in range(MAX_EXCLUSION_ENTRIES)]
    apps, _, _ = validate_dataset_exclusions(names, [], [])
    assert len(apps) == MAX_EXCLUSION_ENTRIES
    with pytest.raises(ValueError, match="too many excluded apps"):
        validate_dataset_exclusions([*names, "one-more"], [], [])
    domains = [f"d{i}.example.com" for i in range(MAX_EXCLUSION_ENTRIES + 1)]
    with pytest.raises(ValueError, match="too many excluded domains"):
        validate_dataset_exclusions([], domains, [])


def test_validate_refuses_a_bare_string_instead_of_a_list() -> None:
    with pytest.raises(ValueError, match="not a single string"):
        validate_dataset_exclusions([], "chase.com", [])


def test_validate_refuses_non_string_entries() -> None:
    with pytest.raises(ValueError, match="must be strings"):
        validate_dataset_exclusions([42], [], [])  # type: ignore[list-item]


# --- url_host --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://www.Example.com/path", "www.example.com"),
        ("https://user:pa:ss@example.com:8443/x", "example.com"),
        ("https://a@b@example.com/", "example.com"),
        ("http://[2001:DB8::1]:8080/", "2001:db8::1"),
        ("http://[::ffff:192.0.2.1]/", "::ffff:c000:201"),
        ("http://192.0.2.1:80/", "192.0.2.1"),
        ("example.com", "example.com"),
        ("example.com:8080/path", "example.com"),
        ("localhost:8080", "localhost"),
        ("//cdn.example.com/lib.js", "cdn.example.com"),
        ("  https://example.com/  ", "example.com"),
        ("https://exa\tmple.com/", "example.com"),
        ("https://example.com?x=1", "example.com"),
        ("https://example.com#frag", "example.com"),
        ("https://example.com.", "example.com"),
        ("https://bücher.de/", "xn--bcher-kva.de"),
        ("https://EXAMPLE%2ECOM/", "example.com"),
        ("wss://socket.example.com/", "socket.example.com"),
        ("chrome-extension://abcdef/popup.html", "abcdef"),
        ("file://server/share", "server"),
    ],
)
def test_url_host_extracts_the_host(url: str, host: str) -> None:
    assert url_host(url) == host


@pytest.mark.parametrize(
    "url",
    [
        "",
        "   ",
        "mailto:a@example.com",
        "about:blank",
        "data:text/html,hi",
        "javascript:alert(1)",
        "file:///etc/passwd",
        "https://",
        "http://[::1/",
        "https://user@/path",
    ],
)
def test_url_host_gives_none_without_a_host(url: str) -> None:
    assert url_host(url) is None


def test_url_host_survives_garbage() -> None:
    assert url_host("http://[zz]/") == "zz"
    assert url_host("https://" + "a" * 70 + ".ü/") is not None
    assert url_host("https://a..b/") == "a..b"
    assert url_host(None) is None  # type: ignore[arg-type]


@given(st.text(max_size=300))
def test_url_host_never_raises(url: str) -> None:
    host = url_host(url)
    assert host is None or isinstance(host, str)


@given(st.text(max_size=60))
def test_url_host_never_raises_after_a_scheme(rest: str) -> None:
    for prefix in ("https://", "http://[", "x://", "https://u:p@"):
        url_host(prefix + rest)


# --- the built-in tables ---------------------------------------------------------------------


def test_always_on_categories_exist_and_are_the_four_required() -> None:
    assert frozenset({"password_managers", "banking", "health", "personal_mail"}) == ALWAYS_ON
    assert BUILTIN_CATEGORIES.keys() >= ALWAYS_ON
    assert {"personal_social", "dating"} <= BUILTIN_CATEGORIES.keys()


@pytest.mark.parametrize("name", sorted(BUILTIN_CATEGORIES))
def test_built_in_entries_are_in_normal_form(name: str) -> None:
    category = BUILTIN_CATEGORIES[name]
    assert category.name == name
    assert category.apps
    assert category.domains
    assert category.description
    for app in category.apps:
        assert normalize_app_name(app) == app
    for domain in category.domains:
        assert normalize_domain(domain) == domain


def test_matcher_reports_the_source() -> None:
    matcher = ExclusionMatcher(["chase"], ["chase.com"], [])
    # A built-in category is more informative than "dataset" when both list the same name.
    assert matcher.app_source("Chase") == "banking"
    assert matcher.host_source("www.chase.com") == "banking"
    assert matcher.host_source("example.com") is None
    with pytest.raises(ValueError, match="unknown exclusion category"):
        ExclusionMatcher(categories=["nope"])


def test_matcher_label_patterns_need_a_parent_domain() -> None:
    matcher = ExclusionMatcher()
    assert matcher.host_source("mychart.example.org") == "health"
    assert matcher.host_source("www.mychart.com") == "health"
    assert matcher.host_source("mychart") is None


def test_canonical_host() -> None:
    assert canonical_host("WWW.Example.COM.") == "www.example.com"
    assert canonical_host("例え.テスト") == "xn--r8jz45g.xn--zckzah"
    assert canonical_host("example\u3002com") == "example.com"
    assert canonical_host("") is None
    assert canonical_host("...") is None
