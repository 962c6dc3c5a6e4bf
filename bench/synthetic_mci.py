"""Labelled MCI-style telemetry, second family: code and config files, more providers, more
countries; split into a **dev** set (tune on it) and a **held-out** set (do not).

``bench.synthetic`` plants a value in chats, terminals, clipboards, typed keys and browser
fields. This module plants, in the same events (``bench.synthetic``'s event builders):

* secrets of every provider format ``bench.synthetic`` knows plus ~30 more fixed-prefix formats
  (Dynatrace, New Relic, PlanetScale, Pulumi, Groq, Replicate, xAI, OpenRouter, LangSmith,
  Pinecone, HubSpot, Terraform Cloud, Google OAuth access tokens...), written into source code
  (Python, JavaScript, Go), config files (YAML, TOML, .env, INI, Dockerfile, Terraform, .npmrc,
  Kubernetes secrets), shell lines, chat and URLs;
* personal data in international shapes: phone numbers of ten countries in international and
  national (context) form, street addresses of eight countries (US, UK, DE, FR, ES, IT, NL,
  AU), passports and driving licences in context, IBANs, cards, SSNs, IPs, dates of birth,
  e-mail addresses in headers and JSON;
* near-miss negatives: hashes, UUIDs, version strings, file names, build ids, publishable
  keys, placeholders, environment references, Luhn-invalid numbers.

**Split.** :data:`DEV` and :data:`HELDOUT` differ in seed *and* in mix: the held-out mix weights
code and config shapes, the second half of every template list and the rarer formats more, so
that a rule tuned to the dev samples' exact surroundings shows it there. The rule engine was
tuned on the dev split only; the held-out figures are read, not optimised.

Values are generated from public format descriptions; nothing is copied from the dev file or
from another project's test data. Seeded ``random.Random`` only.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from dataclasses import dataclass

from bench import synthetic as base
from bench.redaction_samples import Sample
from bench.redaction_scoring import events_view

__all__ = ["DEV", "HELDOUT", "MIXES", "Mix", "generate"]

_A = string.ascii_letters + string.digits
_U = string.ascii_uppercase + string.digits
_HEX = "0123456789abcdef"
_B64U = _A + "-_"


def _r(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


# ---------------------------------------------------------------------------------------------
# Secrets: more fixed-prefix provider formats (public formats)

_MORE_SECRETS: dict[str, Callable[[random.Random], str]] = {
    "dynatrace": lambda r: f"dt0c01.{_r(r, _U, 24)}.{_r(r, _U, 64)}",
    "flutterwave": lambda r: f"FLWSECK_TEST-{_r(r, _HEX, 32)}-X",
    "new_relic": lambda r: r.choice(["NRAK-", "NRJS-"]) + _r(r, _U, 27),
    "planetscale": lambda r: "pscale_tkn_" + _r(r, _B64U, 43),
    "pulumi": lambda r: "pul-" + _r(r, _HEX, 40),
    "readme": lambda r: "rdme_" + _r(r, string.ascii_lowercase + string.digits, 70),
    "rubygems": lambda r: "rubygems_" + _r(r, _HEX, 48),
    "brevo": lambda r: f"xkeysib-{_r(r, _HEX, 64)}-{_r(r, _A, 16)}",
    "shippo": lambda r: "shippo_live_" + _r(r, _HEX, 40),
    "terraform_cloud": lambda r: f"{_r(r, _A, 14)}.atlasv1.{_r(r, _B64U, 67)}",
    "mapbox_secret": lambda r: f"sk.eyJ1Ijoi{_r(r, _B64U, 40)}.{_r(r, _B64U, 22)}",
    "groq": lambda r: "gsk_" + _r(r, _A, 52),
    "replicate": lambda r: "r8_" + _r(r, _A, 37),
    "xai": lambda r: "xai-" + _r(r, _A, 80),
    "perplexity": lambda r: "pplx-" + _r(r, _A, 48),
    "openrouter": lambda r: "sk-or-v1-" + _r(r, _HEX, 64),
    "langsmith": lambda r: f"lsv2_pt_{_r(r, _HEX, 32)}_{_r(r, _HEX, 10)}",
    "pinecone": lambda r: "pcsk_" + _r(r, _A + "_", 70),
    "flyio": lambda r: "fo1_" + _r(r, _B64U, 43),
    "prefect": lambda r: "pnu_" + _r(r, _A, 36),
    "typeform": lambda r: "tfp_" + _r(r, _B64U, 59),
    "contentful": lambda r: "CFPAT-" + _r(r, _B64U, 43),
    "clojars": lambda r: "CLOJARS_" + _r(r, string.ascii_lowercase + string.digits, 60),
    "duffel": lambda r: "duffel_test_" + _r(r, _B64U, 43),
    "scalingo": lambda r: "tk-us-" + _r(r, _B64U, 48),
    "hubspot": lambda r: (
        f"pat-na1-{_r(r, _HEX, 8)}-{_r(r, _HEX, 4)}-{_r(r, _HEX, 4)}-{_r(r, _HEX, 4)}"
        f"-{_r(r, _HEX, 12)}"
    ),
    "google_access_token": lambda r: "ya29.a0" + _r(r, _B64U, 120),
    "supabase": lambda r: "sbp_" + _r(r, _HEX, 40),
    "render": lambda r: "rnd_" + _r(r, _A, 32),
    "adobe": lambda r: "p8e-" + _r(r, _A, 32),
}


def _secret_factories() -> dict[str, Callable[[random.Random], str]]:
    every = dict(base._secret_factories())
    for keystroke_only in base._KEYSTROKE_ONLY:
        every.pop(keystroke_only)
    every.update(_MORE_SECRETS)
    return every


_ENV_NAMES = {
    "dynatrace": "DT_API_TOKEN",
    "new_relic": "NEW_RELIC_API_KEY",
    "planetscale": "PLANETSCALE_SERVICE_TOKEN",
    "pulumi": "PULUMI_ACCESS_TOKEN",
    "groq": "GROQ_API_KEY",
    "replicate": "REPLICATE_API_TOKEN",
    "xai": "XAI_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
    "langsmith": "LANGCHAIN_API_KEY",
    "pinecone": "PINECONE_API_KEY",
    "flyio": "FLY_API_TOKEN",
    "hubspot": "HUBSPOT_ACCESS_TOKEN",
    "google_access_token": "GOOGLE_OAUTH_TOKEN",
}


def _names(rule: str) -> tuple[str, str, str]:
    env = _ENV_NAMES.get(rule) or base._ENV.get(rule, "SERVICE_API_KEY")
    lower = env.lower()
    words = lower.split("_")
    camel = words[0] + "".join(w.capitalize() for w in words[1:])
    return env, lower, camel


# (shape, scenario the events take, template): {v} the value, <ENV>/<env>/<camel> its names.
_SECRET_SHAPES: tuple[tuple[str, str, str], ...] = (
    ("code", "clipboard", 'client = Client(api_key="{v}", timeout=30)\n'),
    ("code", "clipboard", 'import os\n\nos.environ.setdefault("<ENV>", "{v}")\n'),
    ("code", "clipboard", "const <camel> = '{v}';\nexport default { <camel> };\n"),
    ("code", "clipboard", 'headers: {\n  Authorization: `Bearer {v}`,\n  Accept: "json",\n},'),
    ("code", "clipboard", 'func client() *Client {\n\ttoken := "{v}"\n\treturn New(token)\n}'),
    ("code", "clipboard", '<ENV> = "{v}"  # TODO: move to the secret store\n'),
    ("config", "clipboard", "apiVersion: v1\nkind: Secret\nstringData:\n  <env>: {v}\n"),
    ("config", "clipboard", '[auth]\ntoken = "{v}"\nretries = 3\n'),
    ("config", "clipboard", 'FROM python:3.12-slim\nENV <ENV>={v}\nCMD ["app"]\n'),
    ("config", "clipboard", 'variable "region" {}\nprovider "x" {\n  <env> = "{v}"\n}\n'),
    ("config", "clipboard", "# .env\nAPP_ENV=prod\n<ENV>={v}\nDEBUG=false\n"),
    ("config", "clipboard", '{\n  "name": "<app>",\n  "<camel>": "{v}"\n}'),
    ("terminal", "terminal", "export <ENV>={v}"),
    ("terminal", "terminal", 'curl -s -H "Authorization: Bearer {v}" https://api.<corp>/v1/me'),
    ("terminal", "terminal", "<ENV>='{v}' ./deploy.sh --env prod"),
    ("chat", "chat", "here is the <app> key, rotate it after the demo: {v}"),
    ("chat", "chat", "{v} <- that's the new one for staging"),
    ("keys", "keystrokes", "export <ENV>={v}"),
    ("url", "browser-url", "https://api.<corp>/v2/export?format=csv&token={v}"),
    ("field", "browser-field", "{v}"),
)
# Formats whose value cannot stand alone in code (multi-line keys, URL passwords, Basic
# headers, prose passwords): their own templates from bench.synthetic.
_OWN_TEMPLATES = {"url_password", "password_assignment", "private_key", "basic_auth_header"}


# ---------------------------------------------------------------------------------------------
# Personal data in international shapes


def _digits(rng: random.Random, n: int) -> str:
    return _r(rng, string.digits, n)


def _phone(rng: random.Random) -> str:
    d = lambda k: _digits(rng, k)  # noqa: E731
    return rng.choice(
        [
            f"+1 {rng.choice(['415', '646', '312'])} {rng.randrange(201, 999)} {d(4)}",
            f"+44 20 7{d(3)} {d(4)}",
            f"+44 (0)161 {d(3)} {d(4)}",
            f"+49 (0)30 {d(7)}",
            f"+49 170 {d(7)}",
            f"+33 6 {d(2)} {d(2)} {d(2)} {d(2)}",
            f"+39 06 {d(4)} {d(4)}",
            f"+34 91 {d(3)} {d(2)} {d(2)}",
            f"+31 20 {d(3)} {d(4)}",
            f"+91 98{d(3)} {d(5)}",
            f"+81 90-{d(4)}-{d(4)}",
            f"+61 4{d(2)} {d(3)} {d(3)}",
            f"+55 (11) 9{d(4)}-{d(4)}",
            f"0044 20 7{d(3)} {d(4)}",
        ]
    )


def _national_phone(rng: random.Random) -> str:
    d = lambda k: _digits(rng, k)  # noqa: E731
    return rng.choice(
        [
            f"({rng.choice(['415', '646', '312'])}) {rng.randrange(201, 999)}-{d(4)}",
            f"{rng.choice(['415', '646'])}.{rng.randrange(201, 999)}.{d(4)}",
            f"020 7{d(3)} {d(4)}",
            f"07{d(3)} {d(6)}",
            f"030 {d(8)}",
            f"0{rng.choice('1234569')} {d(2)} {d(2)} {d(2)} {d(2)}",
            f"06-{d(8)}",
        ]
    )


_STREET_MAKERS: tuple[Callable[[random.Random], str], ...] = (
    lambda r: (
        f"{r.randrange(2, 9800)} {r.choice(['Maple', 'Cedar', 'Lakeview', 'Washington'])} "
        f"{r.choice(['Street', 'Ave', 'Blvd', 'Road', 'Drive', 'Lane'])}"
    ),
    lambda r: (
        f"{r.randrange(1, 300)} {r.choice(['Baker', 'Kings', 'Victoria', 'Mill'])} "
        f"{r.choice(['Street', 'Road', 'Lane', 'Close', 'Crescent'])}"
    ),
    lambda r: (
        f"{r.choice(['Haupt', 'Linden', 'Garten', 'Schiller', 'Berliner '])}"
        f"{r.choice(['straße', 'strasse', 'str.', 'weg', 'allee'])} {r.randrange(1, 180)}"
    ),
    lambda r: (
        f"{r.randrange(1, 120)} {r.choice(['rue', 'avenue', 'boulevard'])} "
        f"{r.choice(['de la Paix', 'Victor Hugo', 'des Lilas', 'Saint-Michel'])}"
    ),
    lambda r: (
        f"{r.choice(['Calle', 'Avenida', 'Paseo'])} "
        f"{r.choice(['Mayor', 'de Alcalá', 'del Prado', 'Gran Vía'])} {r.randrange(1, 200)}"
    ),
    lambda r: (
        f"{r.choice(['Via', 'Viale', 'Corso', 'Piazza'])} "
        f"{r.choice(['Roma', 'Garibaldi', 'Dante', 'Mazzini'])} {r.randrange(1, 150)}"
    ),
    lambda r: (
        f"{r.choice(['Prinsen', 'Keizers', 'Heren'])}gracht {r.randrange(1, 900)}"
        if r.random() < 0.5
        else f"{r.choice(['Kalver', 'Dorps', 'Molen'])}{r.choice(['straat', 'weg', 'laan'])} "
        f"{r.randrange(1, 300)}"
    ),
    lambda r: (
        f"{r.randrange(1, 400)} {r.choice(['Wallaby', 'George', 'Collins'])} "
        f"{r.choice(['Way', 'Street', 'Parade', 'Terrace'])}"
    ),
)


def _street(rng: random.Random) -> str:
    return rng.choice(_STREET_MAKERS)(rng)


def _passport(rng: random.Random) -> str:
    return rng.choice(
        [
            _digits(rng, 9),
            rng.choice("CFGHJK") + _r(rng, "CFGHJKLMNPRTVWXYZ0123456789", 8),
            _digits(rng, 2) + _r(rng, string.ascii_uppercase, 2) + _digits(rng, 5),
            rng.choice("ABJKLMNPRSTUVWZ") + _digits(rng, 7),
            _r(rng, string.ascii_uppercase, 2) + _digits(rng, 7),
        ]
    )


def _licence(rng: random.Random) -> str:
    return rng.choice(
        [
            base._licence(rng),
            rng.choice(string.ascii_uppercase) + _digits(rng, 12),
            _digits(rng, 9),
            rng.choice(string.ascii_uppercase) + _digits(rng, 3) + "-" + _digits(rng, 4),
        ]
    )


_PII: dict[str, tuple[Callable[[random.Random], str], tuple[tuple[str, str, str], ...]]] = {
    "EMAIL": (
        base._email,
        (
            ("chat", "chat", "send the contract to {v} by friday"),
            ("config", "clipboard", 'owner:\n  name: <First> <Last>\n  email: "{v}"\n'),
            ("code", "clipboard", '{"user": {"id": 42, "email": "{v}"}}'),
            ("mail", "clipboard", "From: <First> <Last> <{v}>\nSubject: invoice\n"),
            ("field", "browser-field", "{v}"),
            ("url", "browser-url", "https://crm.<corp>/people?email={v}"),
        ),
    ),
    "PHONE": (
        _phone,
        (
            ("chat", "chat", "reach me at {v} after 5"),
            ("config", "clipboard", "Name: <First> <Last>\nTel.: {v}\n"),
            ("keys", "keystrokes", "call {v}"),
            ("field", "browser-field", "{v}"),
            ("code", "clipboard", '{"contact": {"phone": "{v}"}}'),
        ),
    ),
    "PHONE_NATIONAL": (
        _national_phone,
        (
            ("chat", "chat", "my phone number is {v}"),
            ("config", "clipboard", "Mobile: {v}\nOffice: remote\n"),
            ("field", "browser-field", "{v}"),
        ),
    ),
    "CREDIT_CARD": (
        base._card,
        (
            ("chat", "chat", "use the card {v} for the hotel"),
            ("field", "browser-field", "{v}"),
            ("keys", "keystrokes", "{v}"),
        ),
    ),
    "IBAN": (
        base._iban,
        (
            ("chat", "chat", "my IBAN is {v}"),
            ("config", "clipboard", "Empfänger: <First> <Last>\nIBAN: {v}\nBIC: DEUTDEFF\n"),
            ("field", "browser-field", "{v}"),
        ),
    ),
    "US_SSN": (
        base._ssn,
        (
            ("chat", "chat", "SSN: {v}"),
            ("field", "browser-field", "{v}"),
            ("config", "clipboard", "employee,ssn\n<First> <Last>,{v}\n"),
        ),
    ),
    "IP_ADDRESS": (
        lambda r: base._ipv4(r) if r.random() < 0.6 else base._ipv6(r),
        (
            ("terminal", "terminal", "ssh -i ~/.ssh/id_ed25519 ubuntu@{v}"),
            ("config", "clipboard", "server:\n  bind: {v}\n  port: 8443\n"),
            ("chat", "chat", "blocked requests from {v} all night"),
        ),
    ),
    "DATE_OF_BIRTH": (
        base._dob,
        (
            ("chat", "chat", "date of birth: {v}"),
            ("config", "clipboard", "Name: <First> <Last>\nDOB: {v}\n"),
            ("field", "browser-field", "{v}"),
            ("code", "clipboard", '{"name": "<First>", "birthdate": "{v}"}'),
        ),
    ),
    "PASSPORT": (
        _passport,
        (
            ("chat", "chat", "my passport number is {v}"),
            ("config", "clipboard", "Traveller: <First> <Last>\nPassport No: {v}\n"),
            ("field", "browser-field", "{v}"),
        ),
    ),
    "DRIVING_LICENCE": (
        _licence,
        (
            ("chat", "chat", "driver's license {v} for the rental car"),
            ("config", "clipboard", "Driver licence number: {v}\nClass: B\n"),
            ("field", "browser-field", "{v}"),
        ),
    ),
    "STREET_ADDRESS": (
        _street,
        (
            ("chat", "chat", "the offsite is at {v}, second floor"),
            ("config", "clipboard", "Ship to:\n<First> <Last>\n{v}\n"),
            ("field", "browser-field", "{v}"),
            ("mail", "clipboard", "Please send the badge to {v} before Monday.\n"),
        ),
    ),
}
_FIELD_LABEL = {"PHONE_NATIONAL": "PHONE"}


# ---------------------------------------------------------------------------------------------
# Near misses


def _semver(rng: random.Random) -> str:
    return f"{rng.randrange(0, 20)}.{rng.randrange(0, 40)}.{rng.randrange(0, 30)}"


_NEAR_SECRETS: dict[
    str, tuple[Callable[[random.Random], str], tuple[tuple[str, str, str], ...]]
] = {
    "sha256": (
        lambda r: _r(r, _HEX, 64),
        (
            ("terminal", "terminal", "echo '{v}  <app>.tar.gz' | sha256sum -c"),
            ("config", "clipboard", 'checksum = "{v}"\n'),
        ),
    ),
    "sha1_commit": (
        lambda r: _r(r, _HEX, 40),
        (
            ("code", "clipboard", "# vendored from upstream at {v}\n"),
            ("chat", "chat", "reverted {v} on main"),
        ),
    ),
    "uuid": (
        base._uuid,
        (
            ("code", "clipboard", 'TENANT_ID = "{v}"\n'),
            ("url", "browser-url", "https://portal.<corp>/tenants/{v}/overview"),
        ),
    ),
    "version": (
        lambda r: r.choice(["v", ""]) + _semver(r) + r.choice(["", "-rc.1", "+build.7", "-beta"]),
        (
            ("terminal", "terminal", "helm upgrade <app> ./chart --version {v}"),
            ("config", "clipboard", '[tool.poetry]\nversion = "{v}"\n'),
        ),
    ),
    "build_id": (
        lambda r: (
            f"{r.randrange(2023, 2027)}{r.randrange(1, 13):02d}{r.randrange(1, 29):02d}"
            f".{r.randrange(1, 999)}-{_r(r, _HEX, 7)}"
        ),
        (("chat", "chat", "build {v} is on staging"),),
    ),
    "file_name": (
        lambda r: (
            f"{r.choice(['report', 'export', 'backup'])}_{r.randrange(2023, 2027)}-"
            f"{r.randrange(1, 13):02d}-{r.randrange(1, 29):02d}_v{r.randrange(1, 9)}"
            f".{r.choice(['pdf', 'csv', 'tar.gz'])}"
        ),
        (("terminal", "terminal", "scp {v} backup:/srv/archive/"),),
    ),
    "env_reference": (
        lambda r: r.choice(
            [
                'os.environ["<ENV>"]',
                "process.env.<ENV>",
                "${{ secrets.<ENV> }}",
                "{{ .Values.<camel> }}",
                "${<ENV>}",
            ]
        ),
        (
            ("code", "clipboard", "api_key = {v}\n"),
            ("config", "clipboard", "env:\n  - name: <ENV>\n    value: {v}\n"),
        ),
    ),
    "publishable_key": (
        lambda r: r.choice(["pk_live_", "pk_test_"]) + _r(r, _A, 24),
        (("code", "clipboard", "const stripe = Stripe('{v}');\n"),),
    ),
    "integrity_hash": (
        lambda r: "sha512-" + _r(r, _A + "+/", 86) + "==",
        (("config", "clipboard", '"integrity": "{v}",\n'),),
    ),
}
_NEAR_PII: dict[
    str, tuple[str, Callable[[random.Random], str], tuple[tuple[str, str, str], ...]]
] = {
    "retina_file": (
        "EMAIL",
        lambda r: (
            f"{r.choice(['logo', 'avatar', 'banner'])}@{r.choice(['2x', '3x', '1.5x'])}"
            f".{r.choice(['png', 'jpg', 'webp'])}"
        ),
        (("code", "clipboard", '<img src="/static/{v}" alt="">\n'),),
    ),
    "npm_scoped": (
        "EMAIL",
        lambda r: (
            f"@{r.choice(['types', 'babel', 'vue'])}/{r.choice(['node', 'core', 'cli'])}"
            f"@{_semver(r)}"
        ),
        (("terminal", "terminal", "pnpm add -D {v}"),),
    ),
    "git_remote": (
        "EMAIL",
        lambda r: f"git@{r.choice(['github.com', 'gitlab.com'])}:<org>/<repo>.git",
        (("terminal", "terminal", "git remote add origin {v}"),),
    ),
    "luhn_invalid": (
        "CREDIT_CARD",
        lambda r: base._card(r, valid=False),
        (("chat", "chat", "ticket {v} is still open"),),
    ),
    "iban_bad_check": (
        "IBAN",
        lambda r: base._iban(r, valid=False),
        (("config", "clipboard", "IBAN: {v}\n"),),
    ),
    "timestamp": (
        "PHONE",
        lambda r: str(1_700_000_000 + r.randrange(10**8)),
        (("code", "clipboard", '{"created": {v}, "ok": true}'),),
    ),
    "semver_ip_like": (
        "IP_ADDRESS",
        lambda r: (
            f"{r.randrange(1, 5)}.{r.randrange(0, 30)}.{r.randrange(0, 30)}.{r.randrange(256, 999)}"
        ),
        (("terminal", "terminal", "pip install <app>=={v}"),),
    ),
    "meeting_date": (
        "DATE_OF_BIRTH",
        base._dob,
        (("chat", "chat", "the launch moved to {v}"),),
    ),
}


# ---------------------------------------------------------------------------------------------
# Mixes and generation


@dataclass(frozen=True, slots=True)
class Mix:
    """A split: its seed, the share of each label, how often each shape is picked and which
    half of each template list is favoured (0: first half, 1: second half)."""

    name: str
    seed: int
    shares: tuple[float, float, float, float]  # secret, not_secret, pii, not_pii
    shape_weight: dict[str, float]
    half: int


DEV = Mix(
    "dev",
    20261123,
    (0.40, 0.20, 0.30, 0.10),
    {"code": 1.0, "config": 1.0, "terminal": 1.0, "chat": 1.0, "keys": 0.6, "url": 0.6},
    0,
)
HELDOUT = Mix(
    "heldout",
    77031,
    (0.35, 0.20, 0.35, 0.10),
    {"code": 2.0, "config": 2.0, "mail": 1.5, "terminal": 0.7, "chat": 0.7, "keys": 0.4},
    1,
)
MIXES = {mix.name: mix for mix in (DEV, HELDOUT)}


def _pick(
    rng: random.Random, mix: Mix, options: tuple[tuple[str, str, str], ...]
) -> tuple[str, str, str]:
    """A template: weighted by shape, the mix's half of the list twice as likely."""
    middle = len(options) // 2
    weights = []
    for index, (shape, _, _) in enumerate(options):
        weight = mix.shape_weight.get(shape, 1.0)
        if len(options) > 1 and (index >= middle) == bool(mix.half):
            weight *= 2
        weights.append(weight)
    return rng.choices(options, weights)[0]


def _names_in(template: str, rule: str) -> str:
    env, lower, camel = _names(rule)
    return template.replace("<ENV>", env).replace("<env>", lower).replace("<camel>", camel)


def _plant(rng: random.Random, mix: Mix) -> tuple[base.Planted, str]:
    label = rng.choices(("secret", "not_secret", "pii", "not_pii"), mix.shares)[0]
    if label == "secret":
        factories = _secret_factories()
        rule = rng.choice(sorted(factories))
        value = factories[rule](rng)
        if rule in _OWN_TEMPLATES:
            scenario, template = rng.choice(base._TEMPLATES[rule])
            if rule == "private_key" and "service_account" in template:
                value = value.replace("\n", "\\n")
            shape = scenario
        else:
            shape, scenario, template = _pick(rng, mix, _SECRET_SHAPES)
            if "\n" in value or (scenario == "browser-url" and not value.isascii()):
                scenario, shape, template = "clipboard", "config", "{v}\n"
        return base.Planted("secret", rule, None, value, scenario, _names_in(template, rule)), shape
    if label == "not_secret":
        rule = rng.choice(sorted(_NEAR_SECRETS))
        make, options = _NEAR_SECRETS[rule]
        shape, scenario, template = _pick(rng, mix, options)
        value = base._fill(_names_in(make(rng), "generic"), rng)
        return base.Planted("not_secret", rule, None, value, scenario, template), shape
    if label == "pii":
        entity = rng.choice(sorted(_PII))
        make, options = _PII[entity]
        shape, scenario, template = _pick(rng, mix, options)
        kind = _FIELD_LABEL.get(entity, entity)
        return base.Planted("pii", entity, kind, make(rng), scenario, template), shape
    rule = rng.choice(sorted(_NEAR_PII))
    kind, make, options = _NEAR_PII[rule]
    shape, scenario, template = _pick(rng, mix, options)
    value = base._fill(make(rng), rng)
    return base.Planted("not_pii", rule, kind, value, scenario, template), shape


def generate(n: int, mix: Mix = DEV, seed: int | None = None) -> list[Sample]:
    """``n`` labelled samples of the ``mix`` split (its own seed unless ``seed`` is given)."""
    seed = mix.seed if seed is None else seed
    rng = random.Random(seed)
    out: list[Sample] = []
    while len(out) < n:
        planted, shape = _plant(rng, mix)
        line = base._line(rng, planted)
        events, meta = base._wrap(rng, planted, line, len(out))
        text = events_view(events)
        entity = planted.entity or planted.rule
        spans = base._spans(text, planted.value, entity, first_only=planted.label == "secret")
        if not spans:
            raise AssertionError(f"planted value lost in {planted}")
        out.append(
            Sample(
                id=f"mci-{mix.name}:{seed}:{len(out):05d}",
                source=f"mci-{mix.name}",
                rule=planted.rule,
                label=planted.label,
                text=text,
                entity=planted.entity,
                spans=spans,
                events=tuple(events),
                scenario=f"{shape}/{planted.scenario}",
                meta=meta,
            )
        )
    return out
