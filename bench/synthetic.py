"""Labelled synthetic MCI-style telemetry for the redaction benchmarks, made deterministically.

``generate(n, seed)`` returns ``n`` :class:`~bench.redaction_samples.Sample` objects, each one
planted value in realistic surroundings, carried by collector-format events:

* ``keystrokes``: ``key`` events typed one by one, with typos corrected by ``Backspace``,
  ``Shift`` on capitals; into terminals, chats, web forms, password and PIN fields;
* ``chat``: Slack / Teams messages as ``key_run`` events (a message may be flushed in two runs,
  now and then in the middle of a word);
* ``terminal``: shell commands (env vars, curl with Authorization headers, git remotes with
  tokens, connection strings, docker/psql/mysql logins) typed or pasted;
* ``browser``: a ``focus`` event with a URL and window title, form fields typed into, form data
  as ``custom`` events;
* ``clipboard``: config files pasted whole (YAML, JSON, .env, ini, service-account JSON).

Planted values are generated with valid structure: GitHub and npm tokens with their CRC32
checksum (30 random base62 characters, then the CRC32 of those in base62, six characters),
Luhn-valid card numbers of the real brand ranges, IBANs with correct mod-97 check digits and
the right national length, SSNs in the valid ranges, public IPv4/global IPv6 addresses, PEM /
OpenSSH / PGP blocks with real headers, JWTs whose parts are base64url JSON, PyPI macaroons that
decode to ``pypi.org``. Near-miss negatives sit in the same surroundings: tokens with a wrong
checksum, UUIDs, git SHAs, docker digests, lockfile hashes, base64 image data, placeholders
(``${DB_PASSWORD}``), URLs without a password, publishable keys, Luhn-invalid "cards" and order
numbers, IBANs with bad check digits, SSNs in invalid ranges, ISBNs and dates that look like
phone numbers, version strings that look like IPs, retina file names that look like e-mails.

Held-out style: the templates, names and values are this module's own; nothing is copied from
the dev file. The sample text is the readable view of its events (``events_view``) and spans
point into it. Seeded ``random.Random`` only: the same ``(n, seed)`` gives the same samples.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import string
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from bench.redaction_samples import Sample, Span
from bench.redaction_scoring import events_view

__all__ = [
    "Planted",
    "generate",
    "github_checksum_valid",
    "iban_valid",
    "luhn_valid",
    "realistic_events",
    "ssn_valid",
]

B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
ALNUM = string.ascii_letters + string.digits
B64URL = ALNUM + "-_"
HEX = "0123456789abcdef"
_T0 = datetime(2026, 4, 21, 8, 30, tzinfo=UTC)


# ---------------------------------------------------------------------------------------------
# Validators (also used by the tests)


def luhn_valid(number: str) -> bool:
    """Whether the digits of ``number`` pass the Luhn check."""
    digits = [int(c) for c in number if c.isdigit()]
    if len(digits) < 2:
        return False
    total = 0
    for i, digit in enumerate(reversed(digits)):
        doubled = digit * 2 if i % 2 else digit
        total += doubled - 9 if doubled > 9 else doubled
    return total % 10 == 0


def _iban_number(text: str) -> int:
    compact = text.replace(" ", "").upper()
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved))


def iban_valid(iban: str) -> bool:
    """Whether ``iban`` has the right length for its country and mod-97 == 1."""
    compact = iban.replace(" ", "").upper()
    country = compact[:2]
    if _IBAN_LENGTH.get(country) != len(compact) or not compact.isalnum():
        return False
    return _iban_number(compact) % 97 == 1


def _base62(number: int, width: int) -> str:
    out = ""
    while number:
        number, r = divmod(number, 62)
        out = B62[r] + out
    return out.rjust(width, "0")


def github_checksum_valid(token: str) -> bool:
    """Whether a ``ghp_``-style (or ``npm_``) token's last 6 characters are its CRC32 in base62."""
    body = token.split("_", 1)[1]
    if len(body) != 36:
        return False
    return _base62(binascii.crc32(body[:30].encode()), 6) == body[30:]


def ssn_valid(ssn: str) -> bool:
    """Whether an SSN is in the issued ranges (area 001-899 but 666, group 01-99, serial > 0)."""
    digits = "".join(c for c in ssn if c.isdigit())
    if len(digits) != 9:
        return False
    area, group, serial = int(digits[:3]), int(digits[3:5]), int(digits[5:])
    return 0 < area < 900 and area != 666 and group > 0 and serial > 0


# ---------------------------------------------------------------------------------------------
# Value factories


def _r(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _checksummed(rng: random.Random, prefix: str, *, valid: bool = True) -> str:
    body = _r(rng, B62, 30)
    check = _base62(binascii.crc32(body.encode()), 6)
    if not valid:
        while True:
            wrong = _r(rng, B62, 6)
            if wrong != check:
                check = wrong
                break
    return prefix + body + check


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _rand_bytes(rng: random.Random, n: int) -> bytes:
    return bytes(rng.randrange(256) for _ in range(n))


def _jwt(rng: random.Random) -> str:
    header = {"alg": rng.choice(["HS256", "RS256", "ES256"]), "typ": "JWT"}
    if rng.random() < 0.5:
        header["kid"] = _r(rng, HEX, 16)
    payload = {
        "sub": f"user-{rng.randrange(10**6)}",
        "iss": rng.choice(["https://auth.acme.io/", "https://login.corp.example/"]),
        "iat": 1_776_000_000 + rng.randrange(10**6),
        "scope": rng.choice(["read write", "admin", "openid profile"]),
    }
    parts = [
        _b64url(json.dumps(header, separators=(",", ":")).encode()),
        _b64url(json.dumps(payload, separators=(",", ":")).encode()),
        _b64url(_rand_bytes(rng, 32 if header["alg"] == "HS256" else 64)),
    ]
    return ".".join(parts)


def _pem_lines(raw: bytes) -> list[str]:
    text = _b64(raw)
    return [text[i : i + 64] for i in range(0, len(text), 64)]


def _private_key(rng: random.Random) -> str:
    kind = rng.choice(["RSA", "EC", "PKCS8", "OPENSSH", "PGP"])
    if kind == "RSA":
        body = b"\x30\x82\x04\xa4\x02\x01\x00\x02\x82\x01\x01\x00" + _rand_bytes(rng, 300)
        head, tail = "-----BEGIN RSA PRIVATE KEY-----", "-----END RSA PRIVATE KEY-----"
    elif kind == "EC":
        body = b"\x30\x77\x02\x01\x01\x04\x20" + _rand_bytes(rng, 112)
        head, tail = "-----BEGIN EC PRIVATE KEY-----", "-----END EC PRIVATE KEY-----"
    elif kind == "PKCS8":
        body = b"\x30\x82\x04\xbe\x02\x01\x00\x30\x0d\x06\x09\x2a\x86\x48" + _rand_bytes(rng, 280)
        head, tail = "-----BEGIN PRIVATE KEY-----", "-----END PRIVATE KEY-----"
    elif kind == "OPENSSH":
        body = b"openssh-key-v1\x00\x00\x00\x00\x04none" + _rand_bytes(rng, 220)
        head, tail = "-----BEGIN OPENSSH PRIVATE KEY-----", "-----END OPENSSH PRIVATE KEY-----"
    else:
        body = b"\x95\x03\xc6\x04" + _rand_bytes(rng, 260)
        head = "-----BEGIN PGP PRIVATE KEY BLOCK-----"
        tail = "-----END PGP PRIVATE KEY BLOCK-----"
        return "\n".join([head, "", *_pem_lines(body), "=" + _r(rng, ALNUM, 4), tail])
    return "\n".join([head, *_pem_lines(body), tail])


def _pypi(rng: random.Random) -> str:
    ident = f"{rng.randrange(16**8):08x}-{rng.randrange(16**4):04x}-4{rng.randrange(16**3):03x}"
    raw = b"\x02\x01\x08pypi.org\x02\x24" + ident.encode() + b"\x00\x02" + _rand_bytes(rng, 70)
    return "pypi-" + _b64url(raw)


def _password(rng: random.Random) -> str:
    style = rng.random()
    if style < 0.4:
        words = ["Correct", "Horse", "Maple", "Tiger", "Winter", "Orbit", "Velvet", "Cactus"]
        return (
            rng.choice(words)
            + rng.choice(words)
            + str(rng.randrange(10, 9999))
            + rng.choice("!#%*")
        )
    if style < 0.8:
        return _r(rng, ALNUM + "!#%^*-_+", rng.randrange(12, 24))
    return _r(rng, ALNUM, rng.randrange(16, 32))


def _secret_factories() -> dict[str, Callable[[random.Random], str]]:
    return {
        "github_token": lambda r: _checksummed(
            r, r.choice(["ghp_", "gho_", "ghu_", "ghs_", "ghr_"])
        ),
        "github_pat": lambda r: "github_pat_" + _r(r, ALNUM, 22) + "_" + _r(r, ALNUM, 59),
        "gitlab_token": lambda r: (
            r.choice(["glpat-", "glpat-", "gldt-", "glrt-"]) + _r(r, B64URL[:-1], 20)
        ),
        "aws_access_key": lambda r: (
            r.choice(["AKIA", "ASIA"]) + _r(r, string.ascii_uppercase + "234567", 16)
        ),
        "aws_secret_key": lambda r: _r(r, ALNUM + "/+", 40),
        "gcp_api_key": lambda r: "AIza" + _r(r, B64URL, 35),
        "azure_storage_key": lambda r: _b64(_rand_bytes(r, 64)),
        "azure_client_secret": lambda r: (
            _r(r, ALNUM, 3) + str(r.randrange(10)) + "Q~" + _r(r, ALNUM + "_~.-", 34)
        ),
        "slack_token": lambda r: (
            r.choice(["xoxb-", "xoxp-"])
            + str(r.randrange(10**11, 10**12))
            + "-"
            + str(r.randrange(10**12, 10**13))
            + "-"
            + _r(r, ALNUM, 24)
        ),
        "slack_webhook": lambda r: (
            "https://hooks.slack.com/services/T"
            + _r(r, string.ascii_uppercase + string.digits, 10)
            + "/B"
            + _r(r, string.ascii_uppercase + string.digits, 10)
            + "/"
            + _r(r, ALNUM, 24)
        ),
        "stripe_key": lambda r: (
            r.choice(["sk_live_", "rk_live_"]) + _r(r, ALNUM, r.choice([24, 99]))
        ),
        "twilio_api_key": lambda r: "SK" + _r(r, HEX, 32),
        "sendgrid_key": lambda r: "SG." + _r(r, B64URL, 22) + "." + _r(r, B64URL, 43),
        "shopify_token": lambda r: r.choice(["shpat_", "shpca_", "shppa_"]) + _r(r, HEX, 32),
        "atlassian_token": lambda r: (
            "ATATT3xFfGF0" + _r(r, B64URL, 170) + "=" + _r(r, HEX.upper(), 8)
        ),
        "openai_key": lambda r: r.choice(
            [
                "sk-proj-" + _r(r, B64URL, 156),
                "sk-" + _r(r, ALNUM, 20) + "T3BlbkFJ" + _r(r, ALNUM, 20),
            ]
        ),
        "anthropic_key": lambda r: "sk-ant-api03-" + _r(r, B64URL, 93) + "AA",
        "npm_token": lambda r: _checksummed(r, "npm_"),
        "pypi_token": _pypi,
        "bitbucket_app_password": lambda r: "ATBB" + _r(r, ALNUM, 32),
        "huggingface_token": lambda r: "hf_" + _r(r, string.ascii_letters, 34),
        "digitalocean_token": lambda r: "dop_v1_" + _r(r, HEX, 64),
        "databricks_token": lambda r: "dapi" + _r(r, HEX, 32),
        "google_oauth_secret": lambda r: "GOCSPX-" + _r(r, B64URL, 28),
        "jwt": _jwt,
        "private_key": _private_key,
        "url_password": lambda r: quote(_password(r), safe=""),
        "password_assignment": _password,
        "bearer_token": lambda r: _r(r, B64URL, r.randrange(32, 64)),
        "basic_auth_header": lambda r: _b64(
            f"svc-{_r(r, string.ascii_lowercase, 5)}:{_password(r)}".encode()
        ),
        "generic_api_key": lambda r: _r(r, r.choice([HEX, ALNUM]), r.choice([32, 40, 48])),
        "password_field": _password,
        "pin_field": lambda r: _r(r, string.digits, r.choice([4, 4, 6])),
    }


# Where each kind of secret is written: (scenario, template). "{v}" is the value; <x> are
# fillers (see _fill). One template is picked at random among those of the value's kind.
_ENV = {
    "github_token": "GITHUB_TOKEN",
    "github_pat": "GH_TOKEN",
    "gitlab_token": "GITLAB_TOKEN",
    "aws_access_key": "AWS_ACCESS_KEY_ID",
    "aws_secret_key": "AWS_SECRET_ACCESS_KEY",
    "gcp_api_key": "GOOGLE_API_KEY",
    "azure_client_secret": "AZURE_CLIENT_SECRET",
    "slack_token": "SLACK_BOT_TOKEN",
    "slack_webhook": "SLACK_WEBHOOK_URL",
    "stripe_key": "STRIPE_SECRET_KEY",
    "twilio_api_key": "TWILIO_API_KEY",
    "sendgrid_key": "SENDGRID_API_KEY",
    "shopify_token": "SHOPIFY_ACCESS_TOKEN",
    "atlassian_token": "JIRA_API_TOKEN",
    "openai_key": "OPENAI_API_KEY",
    "anthropic_key": "ANTHROPIC_API_KEY",
    "npm_token": "NPM_TOKEN",
    "pypi_token": "TWINE_PASSWORD",
    "bitbucket_app_password": "BITBUCKET_APP_PASSWORD",
    "huggingface_token": "HF_TOKEN",
    "digitalocean_token": "DIGITALOCEAN_TOKEN",
    "databricks_token": "DATABRICKS_TOKEN",
    "google_oauth_secret": "GOOGLE_CLIENT_SECRET",
    "jwt": "SESSION_JWT",
    "generic_api_key": "PAYMENTS_API_KEY",
    "bearer_token": "SERVICE_TOKEN",
    "password_assignment": "DB_PASSWORD",
    "azure_storage_key": "AZURE_STORAGE_KEY",
}
_GENERIC_TOKEN_TEMPLATES: tuple[tuple[str, str], ...] = (
    ("terminal", "export <ENV>={v}"),
    ("terminal", "<ENV>={v} <cmd>"),
    ("terminal", "echo '<ENV>=\"{v}\"' >> .env.local"),
    ("clipboard", "# <app> settings\nAPP_ENV=staging\nLOG_LEVEL=info\n<ENV>={v}\nPORT=8080\n"),
    ("clipboard", '<env_lower>:\n  enabled: true\n  key: "{v}"\n  timeout_seconds: 30\n'),
    ("clipboard", '{\n  "service": "<app>",\n  "<env_camel>": "{v}",\n  "retries": 3\n}'),
    ("chat", "here's the key for the staging box: {v} don't share it outside the team"),
    ("chat", "try <ENV>={v} and rerun the job"),
    ("keystrokes", "export <ENV>={v}"),
    ("browser-field", "{v}"),
)
_TEMPLATES: dict[str, tuple[tuple[str, str], ...]] = {
    "github_token": (
        (
            "terminal",
            "git remote set-url origin https://x-access-token:{v}@github.com/<org>/<repo>.git",
        ),
        (
            "terminal",
            'curl -H "Authorization: token {v}" https://api.github.com/repos/<org>/<repo>/pulls',
        ),
        ("terminal", "gh auth login --with-token <<< {v}"),
    ),
    "github_pat": (("terminal", "git clone https://<user>:{v}@github.com/<org>/<repo>.git"),),
    "gitlab_token": (
        ("terminal", 'curl --header "PRIVATE-TOKEN: {v}" https://gitlab.<corp>/api/v4/projects'),
    ),
    "aws_access_key": (
        ("clipboard", "[default]\naws_access_key_id = {v}\nregion = eu-west-1\noutput = json\n"),
        ("terminal", "aws configure set aws_access_key_id {v} --profile <app>"),
    ),
    "aws_secret_key": (
        ("clipboard", "[default]\naws_access_key_id = AKIA<awsid>\naws_secret_access_key = {v}\n"),
        ("terminal", "aws configure set aws_secret_access_key {v}"),
        (
            "clipboard",
            '{\n  "AccessKey": {\n    "UserName": "<user>",\n'
            '    "SecretAccessKey": "{v}",\n    "Status": "Active"\n  }\n}',
        ),
    ),
    "gcp_api_key": (
        ("browser-url", "https://maps.googleapis.com/maps/api/geocode/json?address=<word>&key={v}"),
    ),
    "azure_storage_key": (
        (
            "clipboard",
            "DefaultEndpointsProtocol=https;AccountName=<app>store;AccountKey={v};EndpointSuffix=core.windows.net",
        ),
        ("terminal", "az storage blob list --account-name <app>store --account-key {v} -c logs"),
    ),
    "slack_webhook": (
        (
            "terminal",
            "curl -X POST -H 'Content-type: application/json'"
            ' --data \'{"text":"deploy done"}\' {v}',
        ),
    ),
    "stripe_key": (("terminal", "curl https://api.stripe.com/v1/charges -u {v}:"),),
    "sendgrid_key": (
        ("terminal", 'curl -H "Authorization: Bearer {v}" https://api.sendgrid.com/v3/mail/send'),
    ),
    "openai_key": (
        ("terminal", 'curl https://api.openai.com/v1/models -H "Authorization: Bearer {v}"'),
    ),
    "anthropic_key": (
        ("terminal", 'curl https://api.anthropic.com/v1/messages -H "x-api-key: {v}"'),
    ),
    "npm_token": (
        (
            "clipboard",
            "registry=https://registry.npmjs.org/\n//registry.npmjs.org/:_authToken={v}\n",
        ),
    ),
    "pypi_token": (("clipboard", "[pypi]\n  username = __token__\n  password = {v}\n"),),
    "jwt": (
        ("terminal", 'curl -H "Authorization: Bearer {v}" https://api.<corp>/v1/me'),
        ("browser-url", "https://app.<corp>/sso/callback#id_token={v}&state=<hex8>"),
    ),
    "private_key": (
        ("clipboard", "{v}\n"),
        (
            "clipboard",
            '{\n  "type": "service_account",\n  "project_id": "<app>-prod",\n'
            '  "private_key_id": "<hex40>",\n  "private_key": "{v}\\n",\n'
            '  "client_email": "deployer@<app>-prod.iam.gserviceaccount.com"\n}',
        ),
        ("chat", "pasting the deploy key so you can test:\n{v}"),
    ),
    "url_password": (
        ("terminal", 'psql "postgresql://<user>:{v}@db-<n>.internal.<corp>:5432/<app>"'),
        ("terminal", "redis-cli -u redis://:{v}@cache.<corp>:6379/0 ping"),
        ("clipboard", "DATABASE_URL=mysql://<user>:{v}@10.2.<n>.17:3306/<app>\n"),
        ("chat", "use amqp://<user>:{v}@mq.<corp>:5672/ for the worker"),
        ("browser-url", "https://<user>:{v}@jenkins.<corp>/job/<app>/"),
    ),
    "password_assignment": (
        ("terminal", "PGPASSWORD='{v}' psql -h db.<corp> -U <user> <app>"),
        ("terminal", "mysql -u <user> -p'{v}' -h db.<corp> <app>"),
        ("terminal", "docker login -u <user> --password {v} registry.<corp>"),
        ("clipboard", 'database:\n  host: db.<corp>\n  user: <user>\n  password: "{v}"\n'),
        ("clipboard", "[client]\nuser=<user>\npassword={v}\nhost=db.<corp>\n"),
        ("chat", "the wifi password for the guest network is {v}"),
        ("chat", "new pw for the shared <app> admin account: {v}"),
    ),
    "bearer_token": (
        ("terminal", 'curl -s -H "Authorization: Bearer {v}" https://api.<corp>/v2/export'),
        ("browser-url", "https://files.<corp>/download/<hex8>?access_token={v}&expires=3600"),
    ),
    "basic_auth_header": (
        (
            "terminal",
            'curl -H "Authorization: Basic {v}" https://nexus.<corp>/service/rest/v1/assets',
        ),
    ),
    "generic_api_key": (
        ("terminal", "http POST https://api.<corp>/v1/jobs X-API-Key:{v}"),
        ("clipboard", 'settings = {\n    "api_key": "{v}",\n    "region": "eu",\n}\n'),
        ("browser-url", "https://hooks.<corp>/ingest?api_key={v}"),
    ),
}
_KEYSTROKE_ONLY = {"password_field", "pin_field"}


# ---------------------------------------------------------------------------------------------
# Personal data


_FIRST = (
    "Maren",
    "Tobias",
    "Aiyana",
    "Kenji",
    "Fatou",
    "Lukas",
    "Priya",
    "Mateo",
    "Ingrid",
    "Oluwaseun",
    "Chiara",
    "Dmitri",
    "Noor",
    "Sven",
    "Amara",
    "Jonas",
    "Yuki",
    "Rafael",
)
_LAST = (
    "Lindqvist",
    "Okafor",
    "Brennan",
    "Takeda",
    "Haddad",
    "Novak",
    "Castellano",
    "Iyer",
    "Schreiber",
    "Moreau",
    "Adeyemi",
    "Kowalczyk",
    "Fontaine",
    "Halvorsen",
    "Quispe",
)
_MAIL_DOMAINS = (
    "acme-corp.com",
    "mail.northwind.io",
    "contoso.co.uk",
    "fabrikam.de",
    "outlook.com",
    "proton.me",
    "uni-heidelberg.de",
    "example-health.org",
)
_STREETS = ("Juniper", "Harbor View", "Wexford", "Linden", "Old Mill", "Kestrel", "Sycamore")
_SUFFIX = ("Street", "Avenue", "Road", "Lane", "Boulevard", "Drive", "Way", "Court")
_CITIES = (
    ("Portland", "OR", "97205"),
    ("Austin", "TX", "78701"),
    ("Columbus", "OH", "43215"),
    ("Raleigh", "NC", "27601"),
    ("Madison", "WI", "53703"),
    ("Tucson", "AZ", "85701"),
)

# Country -> (total length, BBAN maker)
_IBAN_LENGTH = {
    "DE": 22,
    "GB": 22,
    "FR": 27,
    "NL": 18,
    "ES": 24,
    "IT": 27,
    "CH": 21,
    "BE": 16,
    "PL": 28,
    "AT": 20,
}


def _bban(rng: random.Random, country: str) -> str:
    d = lambda n: _r(rng, string.digits, n)  # noqa: E731
    up = lambda n: _r(rng, string.ascii_uppercase, n)  # noqa: E731
    return {
        "DE": lambda: d(18),
        "GB": lambda: up(4) + d(14),
        "FR": lambda: d(23),
        "NL": lambda: up(4) + d(10),
        "ES": lambda: d(20),
        "IT": lambda: up(1) + d(22),
        "CH": lambda: d(17),
        "BE": lambda: d(12),
        "PL": lambda: d(24),
        "AT": lambda: d(16),
    }[country]()


def _iban(rng: random.Random, *, valid: bool = True) -> str:
    country = rng.choice(sorted(_IBAN_LENGTH))
    bban = _bban(rng, country)
    check = 98 - _iban_number(country + "00" + bban) % 97
    if not valid:
        check = rng.choice([c for c in range(2, 99) if c % 97 != check % 97])
    compact = f"{country}{check:02d}{bban}"
    if rng.random() < 0.5:
        return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))
    return compact


def _card(rng: random.Random, *, valid: bool = True) -> str:
    brand = rng.choice(["visa", "mc", "mc2", "amex", "discover"])
    prefix, length = {
        "visa": ("4", 16),
        "mc": (str(rng.randrange(51, 56)), 16),
        "mc2": (str(rng.randrange(2221, 2721)), 16),
        "amex": (rng.choice(["34", "37"]), 15),
        "discover": ("6011", 16),
    }[brand]
    body = prefix + _r(rng, string.digits, length - len(prefix) - 1)
    check = next(c for c in string.digits if luhn_valid(body + c))
    if not valid:
        check = str((int(check) + rng.randrange(1, 10)) % 10)
    number = body + check
    style = rng.random()
    if length == 15:
        groups = [number[:4], number[4:10], number[10:]]
    else:
        groups = [number[i : i + 4] for i in range(0, 16, 4)]
    if style < 0.4:
        return " ".join(groups)
    if style < 0.6:
        return "-".join(groups)
    return number


def _ssn(rng: random.Random, *, valid: bool = True) -> str:
    if valid:
        area = rng.choice([rng.randrange(1, 666), rng.randrange(667, 900)])
        group, serial = rng.randrange(1, 100), rng.randrange(1, 10000)
    else:
        area, group, serial = rng.choice(
            [
                (0, rng.randrange(1, 100), rng.randrange(1, 10000)),
                (666, rng.randrange(1, 100), rng.randrange(1, 10000)),
                (rng.randrange(900, 1000), rng.randrange(1, 100), rng.randrange(1, 10000)),
                (rng.randrange(1, 600), 0, rng.randrange(1, 10000)),
                (rng.randrange(1, 600), rng.randrange(1, 100), 0),
            ]
        )
    sep = rng.choice(["-", "-", " "])
    return f"{area:03d}{sep}{group:02d}{sep}{serial:04d}"


def _phone(rng: random.Random) -> str:
    n = lambda k: _r(rng, string.digits, k)  # noqa: E731
    area = rng.choice(["212", "415", "617", "312", "206", "512", "303"])
    exch = str(rng.randrange(201, 999))
    return rng.choice(
        [
            f"+1 {area}-{exch}-{n(4)}",
            f"({area}) {exch}-{n(4)}",
            f"+1 ({area}) {exch} {n(4)}",
            f"+44 20 7{n(3)} {n(4)}",
            f"+44 7{rng.randrange(400, 999)} {n(6)}",
            f"+49 30 {n(8)}",
            f"+49 1{rng.choice('567')}{n(1)} {n(8)}",
            f"+33 {rng.choice('1234569')} {n(2)} {n(2)} {n(2)} {n(2)}",
            f"+91 9{n(4)} {n(5)}",
            f"+81 3-{n(4)}-{n(4)}",
            f"+55 11 9{n(4)}-{n(4)}",
            f"+61 2 9{n(3)} {n(4)}",
            f"+34 6{n(2)} {n(3)} {n(3)}",
        ]
    )


def _ipv4(rng: random.Random) -> str:
    first = rng.choice([8, 23, 34, 45, 52, 63, 81, 93, 104, 142, 151, 185, 203, 212])
    return f"{first}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def _ipv6(rng: random.Random) -> str:
    groups = [f"2{rng.randrange(0x001, 0xFFF):03x}"] + [
        f"{rng.randrange(0x10000):x}" for _ in range(7)
    ]
    if rng.random() < 0.5:
        return ":".join(groups[:4]) + "::" + groups[7]
    return ":".join(groups)


def _dob(rng: random.Random) -> str:
    y, m, d = rng.randrange(1950, 2004), rng.randrange(1, 13), rng.randrange(1, 29)
    months = (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    )
    return rng.choice(
        [
            f"{y}-{m:02d}-{d:02d}",
            f"{d:02d}.{m:02d}.{y}",
            f"{m}/{d}/{y}",
            f"{months[m - 1]} {d}, {y}",
            f"{d} {months[m - 1]} {y}",
        ]
    )


def _passport(rng: random.Random) -> str:
    return rng.choice(
        [
            _r(rng, string.digits, 9),
            rng.choice("CFGHJK") + _r(rng, "CFGHJKLMNPRTVWXYZ0123456789", 8),
            _r(rng, string.digits, 2)
            + _r(rng, string.ascii_uppercase, 2)
            + _r(rng, string.digits, 5),
        ]
    )


def _licence(rng: random.Random) -> str:
    surname = rng.choice(_LAST).upper()[:5].ljust(5, "9")
    return rng.choice(
        [
            f"{surname}{rng.randrange(5, 9)}{rng.randrange(1, 13):02d}{rng.randrange(1, 29):02d}"
            f"{rng.randrange(10)}{_r(rng, 'ABCDEFGHJKLMNPRSTUVWXYZ', 2)}"
            f"9{_r(rng, 'ABCDEFGHIJ', 2)}",
            rng.choice(string.ascii_uppercase) + _r(rng, string.digits, 7),
            rng.choice("BFKM")
            + _r(rng, string.digits, 3)
            + _r(rng, string.ascii_uppercase + string.digits, 7),
        ]
    )


def _address(rng: random.Random) -> str:
    city, state, zipc = rng.choice(_CITIES)
    return (
        f"{rng.randrange(3, 9800)} {rng.choice(_STREETS)} {rng.choice(_SUFFIX)}, {city}, "
        f"{state} {zipc}"
    )


def _email(rng: random.Random) -> str:
    first, last = rng.choice(_FIRST).lower(), rng.choice(_LAST).lower()
    local = rng.choice(
        [
            f"{first}.{last}",
            f"{first[0]}{last}",
            f"{first}_{last}{rng.randrange(10, 99)}",
            f"{first}+{rng.choice(['jira', 'news', 'hr'])}",
        ]
    )
    if rng.random() < 0.1:
        local = local.capitalize()
    return f"{local}@{rng.choice(_MAIL_DOMAINS)}"


_PII_FACTORIES: dict[str, Callable[[random.Random], str]] = {
    "EMAIL": _email,
    "PHONE": _phone,
    "CREDIT_CARD": _card,
    "IBAN": _iban,
    "US_SSN": _ssn,
    "IP_ADDRESS": lambda r: _ipv4(r) if r.random() < 0.7 else _ipv6(r),
    "DATE_OF_BIRTH": _dob,
    "PASSPORT": _passport,
    "DRIVING_LICENCE": _licence,
    "STREET_ADDRESS": _address,
    "PERSON": lambda r: f"{r.choice(_FIRST)} {r.choice(_LAST)}",
}
_PII_TEMPLATES: dict[str, tuple[tuple[str, str], ...]] = {
    "EMAIL": (
        ("chat", "can you loop in {v} on the thread"),
        ("terminal", 'git config --global user.email "{v}"'),
        ("browser-field", "{v}"),
        ("browser-url", "https://crm.<corp>/contacts/search?q={v}&page=2"),
        ("keystrokes", "ping {v} about the offsite budget"),
    ),
    "PHONE": (
        ("chat", "call me on {v} if the bridge drops"),
        ("browser-field", "{v}"),
        ("clipboard", "Contact\nName: <First> <Last>\nMobile: {v}\nTeam: <app>\n"),
        ("keystrokes", "my number is {v}"),
    ),
    "CREDIT_CARD": (
        ("browser-field", "{v}"),
        ("chat", "company card for the conference is {v} exp 09/28"),
        ("keystrokes", "{v}"),
        ("browser-custom", "{v}"),
    ),
    "IBAN": (
        ("browser-field", "{v}"),
        ("chat", "please wire the refund to {v} thanks"),
        ("clipboard", "Beneficiary: <First> <Last>\nIBAN: {v}\nReference: INV-<n>\n"),
    ),
    "US_SSN": (
        ("browser-field", "{v}"),
        ("chat", "HR needs my SSN {v} for the form"),
        ("keystrokes", "ssn {v}"),
    ),
    "IP_ADDRESS": (
        ("terminal", "ssh deploy@{v} -p 22"),
        ("terminal", "curl -v http://{v}:8080/healthz"),
        ("chat", "the customer connects from {v} can you allowlist it"),
    ),
    "DATE_OF_BIRTH": (
        ("browser-field", "{v}"),
        ("chat", "my date of birth is {v} for the insurance form"),
        ("clipboard", "Employee: <First> <Last>\nDOB: {v}\nStart date: next Monday\n"),
    ),
    "PASSPORT": (("chat", "passport number {v} expires next year"), ("browser-field", "{v}")),
    "DRIVING_LICENCE": (
        ("chat", "driving licence no. {v} attached for the rental"),
        ("browser-field", "{v}"),
    ),
    "STREET_ADDRESS": (("chat", "ship the monitor to {v} please"), ("browser-field", "{v}")),
    "PERSON": (("chat", "I had a chat with {v} about the rollout"),),
}
_FIELD_LABELS = {
    "EMAIL": ("Email", "email"),
    "PHONE": ("Phone number", "tel"),
    "CREDIT_CARD": ("Card number", "text"),
    "IBAN": ("IBAN", "text"),
    "US_SSN": ("Social Security Number", "text"),
    "DATE_OF_BIRTH": ("Date of birth", "text"),
    "PASSPORT": ("Passport number", "text"),
    "DRIVING_LICENCE": ("Driver's license number", "text"),
    "STREET_ADDRESS": ("Street address", "text"),
}


# ---------------------------------------------------------------------------------------------
# Near misses: (rule or entity, label, maker, templates)


def _uuid(rng: random.Random) -> str:
    h = _r(rng, HEX, 32)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{rng.choice('89ab')}{h[17:20]}-{h[20:]}"


def _isbn(rng: random.Random) -> str:
    body = "978" + _r(rng, string.digits, 9)
    total = sum(int(c) * (1 if i % 2 == 0 else 3) for i, c in enumerate(body))
    check = (10 - total % 10) % 10
    return f"{body[:3]}-{body[3]}-{body[4:7]}-{body[7:12]}-{check}"


def _order_number(rng: random.Random) -> str:
    while True:
        number = str(rng.randrange(10**15, 10**16))
        if not luhn_valid(number):
            return number


_NEAR_SECRETS: dict[str, tuple[Callable[[random.Random], str], tuple[tuple[str, str], ...]]] = {
    "github_token_bad_checksum": (
        lambda r: _checksummed(r, "ghp_", valid=False),
        (("terminal", "export GITHUB_TOKEN={v}"), ("chat", "is {v} the right format for a token?")),
    ),
    "uuid": (
        _uuid,
        (
            ("terminal", "kubectl logs job/<app>-migrate | grep {v}"),
            ("chat", "request id {v} failed again with a 502"),
            ("clipboard", '{\n  "trace_id": "{v}",\n  "status": 500\n}'),
        ),
    ),
    "git_sha": (
        lambda r: _r(r, HEX, r.choice([40, 40, 12, 7])),
        (
            ("terminal", "git checkout {v}"),
            ("terminal", "git revert --no-edit {v}"),
            ("chat", "bisect points at commit {v}, can you have a look"),
        ),
    ),
    "docker_digest": (
        lambda r: "sha256:" + _r(r, HEX, 64),
        (("terminal", "docker pull ghcr.io/<org>/<app>@{v}"),),
    ),
    "lockfile_hash": (
        lambda r: r.choice(["sha512-" + _b64(_rand_bytes(r, 64)), "sha256:" + _r(r, HEX, 64)]),
        (
            (
                "clipboard",
                '"node_modules/left-pad": {\n  "version": "1.3.0",\n  "integrity": "{v}"\n}',
            ),
            ("clipboard", "requests==2.32.3 \\\n    --hash={v}\n"),
        ),
    ),
    "base64_image": (
        lambda r: "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAA" + _b64(_rand_bytes(r, 120)),
        (("clipboard", '<img alt="logo" src="{v}">'),),
    ),
    "placeholder_secret": (
        lambda r: r.choice(
            [
                "${DB_PASSWORD}",
                "<your-api-key>",
                "changeme",
                "xxxxxxxxxxxxxxxx",
                'os.environ["API_KEY"]',
                "process.env.STRIPE_SECRET_KEY",
                "{{ vault_token }}",
                "********",
                "REPLACE_ME",
            ]
        ),
        (
            ("clipboard", "database:\n  password: {v}\n"),
            ("terminal", "export API_TOKEN={v}"),
            ("clipboard", "api_key = {v}\n"),
        ),
    ),
    "url_without_password": (
        lambda r: r.choice(
            [
                "https://<user>@bitbucket.org/<org>/<repo>.git",
                "postgresql://localhost:5432/<app>",
                "ssh://git@github.com/<org>/<repo>.git",
                "https://<corp>/login?next=/settings/password",
            ]
        ),
        (("terminal", "git clone {v}"), ("browser-url", "{v}")),
    ),
    "password_in_prose": (
        lambda r: r.choice(
            ["reset my password", "password manager", "the secret sauce", "token bucket"]
        ),
        (
            ("chat", "I had to {v} again after the SSO change"),
            ("chat", "the {v} docs are on the wiki"),
        ),
    ),
    "stripe_publishable_key": (
        lambda r: "pk_live_" + _r(r, ALNUM, 24),
        (("clipboard", "const stripe = Stripe('{v}');"),),
    ),
    "aws_arn": (
        lambda r: f"arn:aws:iam::{_r(r, string.digits, 12)}:role/<app>-deploy",
        (("terminal", "aws sts assume-role --role-arn {v} --role-session-name ci"),),
    ),
    "jwt_header_only": (
        lambda _: _b64url(b'{"alg":"HS256","typ":"JWT"}'),
        (("chat", "the header decodes fine: {v} but the body is empty"),),
    ),
    "md5_checksum": (
        lambda r: _r(r, HEX, 32),
        (("terminal", "echo '{v}  release.tar.gz' | md5sum -c"),),
    ),
}
_NEAR_PII: dict[str, tuple[str, Callable[[random.Random], str], tuple[tuple[str, str], ...]]] = {
    "card_bad_luhn": (
        "CREDIT_CARD",
        lambda r: _card(r, valid=False),
        (("browser-field", "{v}"), ("chat", "is {v} a test card?")),
    ),
    "order_number": (
        "CREDIT_CARD",
        _order_number,
        (
            ("chat", "order {v} shipped yesterday"),
            ("browser-url", "https://shop.<corp>/orders/{v}"),
        ),
    ),
    "unix_millis": (
        "CREDIT_CARD",
        lambda r: str(1_776_000_000_000 + r.randrange(10**9)),
        (("clipboard", '{"event": "login", "ts": {v}}'),),
    ),
    "iban_bad_check": (
        "IBAN",
        lambda r: _iban(r, valid=False),
        (("browser-field", "{v}"), ("chat", "bank says {v} is invalid")),
    ),
    "ssn_invalid_range": (
        "US_SSN",
        lambda r: _ssn(r, valid=False),
        (("chat", "test value {v} from the fixtures"),),
    ),
    "isbn": ("PHONE", _isbn, (("chat", "the book is ISBN {v}"),)),
    "iso_date": (
        "PHONE",
        lambda r: f"{r.randrange(2019, 2027)}-{r.randrange(1, 13):02d}-{r.randrange(1, 29):02d}",
        (("chat", "release cut on {v} as planned"),),
    ),
    "build_number": (
        "PHONE",
        lambda r: f"10.0.{r.randrange(19041, 22631)}.{r.randrange(1000, 4000)}",
        (("chat", "Windows build {v} has the fix"),),
    ),
    "time_range": (
        "PHONE",
        lambda r: f"{r.randrange(7, 11):02d}:00-{r.randrange(15, 19):02d}:30",
        (("chat", "office hours {v} on weekdays"),),
    ),
    "version_not_ip": (
        "IP_ADDRESS",
        lambda r: (
            f"{r.randrange(1, 9)}.{r.randrange(300, 999)}.{r.randrange(0, 99)}.{r.randrange(1, 9)}"
        ),
        (("terminal", "pip install <app>=={v}"),),
    ),
    "oid": (
        "IP_ADDRESS",
        lambda r: f"1.3.6.1.4.1.{r.randrange(1000, 60000)}.{r.randrange(1, 9)}",
        (("terminal", "snmpget -v2c -c public switch-3 {v}"),),
    ),
    "retina_file": (
        "EMAIL",
        lambda r: f"{r.choice(['logo', 'icon', 'hero'])}@{r.choice(['2x', '3x'])}.png",
        (("terminal", "git add assets/{v}"),),
    ),
    "npm_scope": (
        "EMAIL",
        lambda r: (
            f"@{r.choice(['types', 'babel', 'acme'])}/{r.choice(['node', 'core'])}"
            f"@{r.randrange(1, 30)}.{r.randrange(20)}.{r.randrange(9)}"
        ),
        (("terminal", "npm install {v}"),),
    ),
    "not_a_birthday": ("DATE_OF_BIRTH", _dob, (("chat", "the deadline for the draft is {v}"),)),
}


# ---------------------------------------------------------------------------------------------
# Surroundings


_CHAT = (
    "morning all",
    "can someone review my PR when you get a sec",
    "deploy is green now",
    "I'll be a few minutes late to standup",
    "the flaky test is back, looking into it",
    "thanks, that fixed it",
    "lunch?",
    "moving this to the incident channel",
    "did anyone change the staging config",
    "ok will do",
    "sounds good to me",
)
_SHELL = (
    "cd ~/src/<app>",
    "git status",
    "git pull --rebase",
    "make test",
    "ls -la",
    "kubectl get pods -n staging",
    "docker compose up -d",
    "pytest -q tests/unit",
    "tail -f logs/app.log",
    "npm run build",
)
_APPS = {
    "chat": (
        ("Slack", "#<team> - Acme - Slack"),
        ("Microsoft Teams", "Chat | <First> | Microsoft Teams"),
    ),
    "terminal": (
        ("Terminal", "<user> — -zsh — 120x40"),
        ("Windows Terminal", "PowerShell"),
        ("iTerm2", "~/src/<app> (bash)"),
    ),
    "clipboard": (
        ("Code", "config - <app> - Visual Studio Code"),
        ("Notepad++", "settings.txt - Notepad++"),
        ("IntelliJ IDEA", "<app> - application.yml"),
    ),
    "browser": (
        ("Google Chrome", "<title> - Google Chrome"),
        ("Firefox", "<title> — Mozilla Firefox"),
        ("Microsoft Edge", "<title> - Work - Microsoft Edge"),
    ),
}
_TITLES = (
    "Checkout",
    "Account settings",
    "New hire onboarding",
    "Expense report",
    "Dashboard",
    "Payment details",
    "Profile",
)


def _fill(template: str, rng: random.Random) -> str:
    fills = {
        "<app>": lambda: rng.choice(["billing", "atlas", "orion", "ledger", "relay", "pulse"]),
        "<org>": lambda: rng.choice(["acme", "northwind", "contoso-labs"]),
        "<repo>": lambda: rng.choice(["platform", "infra", "web-app", "data-pipeline"]),
        "<user>": lambda: rng.choice(["deploy", "svc_ci", "maren", "kenji", "admin"]),
        "<corp>": lambda: rng.choice(["acme-corp.com", "northwind.io", "contoso.dev"]),
        "<team>": lambda: rng.choice(["platform", "payments", "sre", "data"]),
        "<title>": lambda: rng.choice(_TITLES),
        "<First>": lambda: rng.choice(_FIRST),
        "<Last>": lambda: rng.choice(_LAST),
        "<word>": lambda: rng.choice(["berlin", "main+street", "airport"]),
        "<cmd>": lambda: rng.choice(["npm test", "python manage.py migrate", "make deploy"]),
        "<n>": lambda: str(rng.randrange(2, 250)),
        "<hex8>": lambda: _r(rng, HEX, 8),
        "<hex40>": lambda: _r(rng, HEX, 40),
        "<awsid>": lambda: _r(rng, string.ascii_uppercase + "234567", 16),
    }
    for key, make in fills.items():
        while key in template:
            template = template.replace(key, make(), 1)
    return template


def _pad(rng: random.Random, core: str, pool: tuple[str, ...], sep: str) -> str:
    """Surround ``core`` with background sentences now and then (the events stay 30-600 bytes)."""
    before = [_fill(rng.choice(pool), rng) for _ in range(rng.choice([0, 0, 1, 2]))]
    after = [_fill(rng.choice(pool), rng) for _ in range(rng.choice([0, 1, 2]))]
    return sep.join([*before, core, *after])


@dataclass(frozen=True, slots=True)
class Planted:
    """What a sample plants: its label, rule (provider / near-miss family), entity and value."""

    label: str
    rule: str
    entity: str | None
    value: str
    scenario: str
    template: str


class _Events:
    """Builds collector-format events with increasing times."""

    def __init__(self, rng: random.Random, index: int) -> None:
        self.rng = rng
        self.t = _T0 + timedelta(minutes=index)
        self.subject = f"emp-{rng.randrange(1, 400):04d}"
        self.out: list[dict[str, Any]] = []

    def add(self, kind: str, data: dict[str, Any], **fields: Any) -> None:
        self.t += timedelta(milliseconds=self.rng.randrange(40, 400))
        event = {
            "subject": self.subject,
            "time": self.t.isoformat(timespec="milliseconds"),
            "kind": kind,
            "device": {"id": "LT-0042", "owner": "corporate"},
            "jurisdiction": "DE",
            **{k: v for k, v in fields.items() if v is not None},
            "data": data,
        }
        self.out.append(event)

    def _key(self, key: str, fields: dict[str, Any]) -> None:
        data: dict[str, Any] = {"key": key}
        if len(key) == 1 and key.isupper():
            data["modifiers"] = ["shift"]
        self.add("key", data, **fields)


def _typed_events(ev: _Events, text: str, fields: dict[str, Any]) -> None:
    """Key events for ``text`` with typos: a wrong letter or two, then as many Backspaces."""
    rng = ev.rng
    for ch in text:
        if ch.isalnum() and rng.random() < 0.04:
            wrong = rng.choice([1, 1, 2])
            for _ in range(wrong):
                ev._key(rng.choice(string.ascii_lowercase), fields)
            for _ in range(wrong):
                ev._key("Backspace", fields)
        ev._key({"\n": "Enter", "\t": "Tab"}.get(ch, ch), fields)


def _split_runs(rng: random.Random, text: str) -> list[str]:
    """A one-line message as one or two key runs, split at a space or (now and then) anywhere."""
    if len(text) < 20 or "\n" in text or rng.random() < 0.7:
        return [text]
    if rng.random() < 0.3:
        cut = rng.randrange(5, len(text) - 5)
    else:
        spaces = [i + 1 for i, c in enumerate(text) if c == " "]
        if not spaces:
            return [text]
        cut = rng.choice(spaces)
    return [text[:cut], text[cut:]]


def _wrap(
    rng: random.Random, planted: Planted, line: str, index: int
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Events carrying ``line`` (which holds the planted value) for the planted scenario."""
    ev = _Events(rng, index)
    meta: dict[str, Any] = {}
    scenario = planted.scenario
    if scenario in ("chat", "terminal", "clipboard"):
        app, title = rng.choice(_APPS[scenario])
        title = _fill(title, rng)
        if scenario == "clipboard" or (scenario == "terminal" and rng.random() < 0.3):
            ev.add("clipboard", {"text": line}, app=app, window_title=title)
        else:
            label = "Message" if scenario == "chat" else None
            fields = {
                "app": app,
                "window_title": title,
                "field": {"type": "text", "label": label} if label else None,
            }
            runs = _split_runs(rng, line)
            meta["runs"] = len(runs)
            for run in runs:
                ev.add("key_run", {"text": run}, **fields)
    elif scenario == "keystrokes":
        if planted.rule == "password_field":
            app, title = rng.choice(_APPS["browser"])
            title = _fill(title, rng).replace("<title>", "Sign in")
            label = rng.choice(["Password", "Passwort", "Enter your password", None])
            fields = {
                "app": app,
                "window_title": title,
                "url": f"https://login.{_fill('<corp>', rng)}/",
                "field": {"type": "password", "label": label} if label else {"type": "password"},
            }
        elif planted.rule == "pin_field":
            app, title = rng.choice(_APPS["browser"])
            label = rng.choice(
                ["PIN", "Card PIN", "Enter passcode", "One-time code", "Security code (CVV)"]
            )
            fields = {
                "app": app,
                "window_title": _fill(title, rng),
                "field": {"type": "text", "label": label},
            }
        else:
            app, title = rng.choice(_APPS["terminal"] + _APPS["chat"])
            fields = {"app": app, "window_title": _fill(title, rng)}
        meta["keys"] = True
        _typed_events(ev, line, fields)
    else:  # browser-url, browser-field, browser-custom
        app, title = rng.choice(_APPS["browser"])
        title = _fill(title, rng)
        if scenario == "browser-url":
            ev.add("focus", {}, app=app, window_title=title, url=line)
        elif scenario == "browser-custom":
            url = f"https://shop.{_fill('<corp>', rng)}/checkout"
            ev.add(
                "custom",
                {
                    "form": "checkout",
                    "fields": [{"name": "card", "value": line}, {"name": "country", "value": "DE"}],
                },
                app=app,
                window_title=title,
                url=url,
            )
        else:
            label, ftype = _FIELD_LABELS.get(planted.entity or "", ("API key", "text"))
            url = f"https://app.{_fill('<corp>', rng)}/settings"
            ev.add("focus", {}, app=app, window_title=title, url=url)
            fields = {
                "app": app,
                "window_title": title,
                "url": url,
                "field": {"type": ftype, "label": label},
            }
            if rng.random() < 0.5:
                _typed_events(ev, line, fields)
                meta["keys"] = True
            else:
                ev.add("key_run", {"text": line}, **fields)
    return ev.out, meta


# ---------------------------------------------------------------------------------------------
# Generation


def _env_names(rule: str) -> dict[str, str]:
    env = _ENV.get(rule, "API_TOKEN")
    camel = "".join(w.capitalize() for w in env.lower().split("_"))
    return {"<ENV>": env, "<env_lower>": env.lower(), "<env_camel>": camel[0].lower() + camel[1:]}


def _plant(rng: random.Random) -> Planted:
    roll = rng.random()
    if roll < 0.42:
        factories = _secret_factories()
        rule = rng.choice(sorted(factories))
        value = factories[rule](rng)
        if rule in _KEYSTROKE_ONLY:
            return Planted("secret", rule, None, value, "keystrokes", "{v}")
        templates = _TEMPLATES.get(rule, ())
        if rule not in {"url_password", "password_assignment", "private_key", "basic_auth_header"}:
            templates = templates + _GENERIC_TOKEN_TEMPLATES
        scenario, template = rng.choice(templates)
        for key, name in _env_names(rule).items():
            template = template.replace(key, name)
        if rule == "private_key" and "service_account" in template:
            value = value.replace("\n", "\\n")  # as JSON escapes it
        return Planted("secret", rule, None, value, scenario, template)
    if roll < 0.62:
        rule = rng.choice(sorted(_NEAR_SECRETS))
        make, templates = _NEAR_SECRETS[rule]
        scenario, template = rng.choice(templates)
        return Planted("not_secret", rule, None, _fill(make(rng), rng), scenario, template)
    if roll < 0.88:
        entity = rng.choice(sorted(_PII_FACTORIES))
        scenario, template = rng.choice(_PII_TEMPLATES[entity])
        return Planted("pii", entity, entity, _PII_FACTORIES[entity](rng), scenario, template)
    rule = rng.choice(sorted(_NEAR_PII))
    entity, make, templates = _NEAR_PII[rule]
    scenario, template = rng.choice(templates)
    return Planted("not_pii", rule, entity, make(rng), scenario, template)


def _line(rng: random.Random, planted: Planted) -> str:
    head, _, tail = _fill(planted.template, rng).partition("{v}")
    core = head + planted.value + tail
    if planted.scenario == "chat":
        return _pad(rng, core, _CHAT, " ")
    if planted.scenario in ("terminal", "keystrokes") and "\n" not in core and rng.random() < 0.3:
        return _pad(rng, core, _SHELL, "\n")
    return core


def _spans(text: str, value: str, entity: str, *, first_only: bool) -> tuple[Span, ...]:
    spans, start = [], text.find(value)
    while start >= 0:
        spans.append(Span(start, start + len(value), entity))
        if first_only:
            break
        start = text.find(value, start + len(value))
    return tuple(spans)


def generate(n: int, seed: int) -> list[Sample]:
    """``n`` labelled samples of synthetic telemetry, the same for the same ``(n, seed)``."""
    rng = random.Random(seed)
    out: list[Sample] = []
    while len(out) < n:
        planted = _plant(rng)
        line = _line(rng, planted)
        events, meta = _wrap(rng, planted, line, len(out))
        text = events_view(events)
        entity = planted.entity or planted.rule
        spans = _spans(text, planted.value, entity, first_only=planted.label == "secret")
        if not spans:  # the value did not survive into the readable view: never expected
            raise AssertionError(f"planted value lost in {planted}")
        out.append(
            Sample(
                id=f"synthetic:{seed}:{len(out):05d}",
                source="synthetic",
                rule=planted.rule,
                label=planted.label,
                text=text,
                entity=planted.entity,
                spans=spans,
                events=tuple(events),
                scenario=planted.scenario,
                meta=meta,
            )
        )
    return out


def realistic_events(n: int, seed: int, *, planted_share: float = 0.1) -> list[dict[str, Any]]:
    """``n`` typical events for speed runs: 200-600 bytes of text, ``planted_share`` with a value.

    Chat and terminal ``key_run`` events and pasted configs (``clipboard``), with an app and a
    window title; most hold nothing to redact, as in real telemetry.
    """
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    while len(out) < n:
        target = rng.randrange(200, 601)
        scenario = rng.choice(["chat", "chat", "terminal", "clipboard"])
        pool, sep = (_CHAT, " ") if scenario == "chat" else (_SHELL, "\n")
        parts: list[str] = []
        if rng.random() < planted_share:
            planted = _plant(rng)
            parts.append(_fill(planted.template, rng).replace("{v}", planted.value))
        while sum(len(p) + 1 for p in parts) < target:
            parts.insert(rng.randrange(len(parts) + 1), _fill(rng.choice(pool), rng))
        text = sep.join(parts)[:target]
        app, title = rng.choice(_APPS["chat" if scenario == "chat" else scenario])
        kind = "clipboard" if scenario == "clipboard" else "key_run"
        out.append(
            {
                "subject": f"emp-{rng.randrange(1, 400):04d}",
                "time": (_T0 + timedelta(seconds=len(out))).isoformat(timespec="milliseconds"),
                "kind": kind,
                "app": app,
                "window_title": _fill(title, rng),
                "device": {"id": "LT-0042", "owner": "corporate"},
                "data": {"text": text},
            }
        )
    return out
