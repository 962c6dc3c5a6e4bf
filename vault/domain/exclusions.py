"""Built-in exclusion categories: apps and sites whose events are never collected (DESIGN.md §5).

A category names apps (matched case-insensitively against the whole of an event's ``app``) and
domains (matched against the host of its ``url``, the domain itself or any subdomain of it).
A domain written ``label.*`` matches any host with that label followed by at least one more
label (``mychart.*`` matches ``mychart.example-health.org`` and ``www.mychart.com``), because
some services are hosted under many organisations' domains.

The always-on categories apply to every dataset whatever it configures; a dataset may add
categories, apps and domains, never remove any. Everything here is pure data and string
handling: the lists are part of the code, reviewed like code, and versioned with it.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from urllib.parse import unquote

__all__ = [
    "ALWAYS_ON",
    "BUILTIN_CATEGORIES",
    "DATASET_SOURCE",
    "MAX_APP_NAME",
    "MAX_DOMAIN",
    "ExclusionCategory",
    "ExclusionMatcher",
    "canonical_host",
    "normalize_app_name",
    "normalize_domain",
]

MAX_APP_NAME = 256
MAX_DOMAIN = 253

#: Source name reported when a match comes from the dataset's own lists.
DATASET_SOURCE = "dataset"


@dataclass(frozen=True, slots=True)
class ExclusionCategory:
    """A named group of apps and domains excluded together."""

    name: str
    description: str
    apps: frozenset[str]
    domains: frozenset[str]


_WS = re.compile(r"\s+")
# Collectors report the executable or bundle name on some platforms: "KeePassXC.exe" and
# "KeePassXC.app" are the same app as "KeePassXC".
_APP_SUFFIX = re.compile(r"\.(?:exe|app)$")


def normalize_app_name(raw: str) -> str:
    """The comparison form of an app name: NFKC, case-folded, single spaces, no ``.exe``/``.app``.

    Never raises; the result may be empty.
    """
    folded = unicodedata.normalize("NFKC", raw).casefold()
    folded = _WS.sub(" ", folded).strip()
    return _APP_SUFFIX.sub("", folded).strip()


# The label-separating dots that IDNA (and browsers) treat as ".".
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def _to_ascii(host: str) -> str | None:
    """IDNA-encode a host; ``None`` when it cannot be encoded."""
    if host.isascii():
        return host.lower()
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return None


def canonical_host(host: str) -> str | None:
    """The comparison form of a host taken from a URL, or ``None`` when there is none.

    Lenient and never raises: percent-decoded, IDNA/fullwidth dots folded, lower-case,
    punycode for internationalised names, no trailing dot, IPv6 in compressed form. This is
    what a browser would connect to, so ``CH%41SE.com.`` and the same name in fullwidth
    letters both become ``chase.com``.
    """
    text = unquote(host).translate(_DOTS).strip().rstrip(".")
    if not text:
        return None
    if ":" in text:
        try:
            return ipaddress.IPv6Address(text).compressed
        except ValueError:
            return text.lower()
    ascii_host = _to_ascii(text)
    if ascii_host is None:
        # Not encodable (empty or over-long label...): keep a folded form so that nothing
        # downstream has to cope with an exception; it simply matches no list entry.
        ascii_host = unicodedata.normalize("NFKC", text).casefold()
    return ascii_host.rstrip(".") or None


def normalize_domain(raw: str) -> str:
    """The stored form of a configured domain; raises ``ValueError`` when it is malformed.

    Accepts and strips a scheme, path, port and trailing dot (``https://Chase.com:443/x`` is
    ``chase.com``), a leading ``*.`` (subdomains always match anyway), and converts an
    internationalised name to punycode. ``label.*`` is kept as a label pattern. An IPv6
    address may be given in brackets.
    """
    text = raw.strip()
    if "://" in text:
        text = text.split("://", 1)[1]
    text = re.split(r"[/?#]", text, maxsplit=1)[0]
    if "@" in text:
        raise ValueError(f"domain must not contain user information: {raw!r}")
    if text.startswith("["):
        end = text.find("]")
        try:
            return ipaddress.IPv6Address(text[1:end] if end > 0 else "").compressed
        except ValueError:
            raise ValueError(f"malformed IPv6 address in domain: {raw!r}") from None
    text = text.split(":", 1)[0].translate(_DOTS).rstrip(".")
    if text.startswith("*."):
        text = text[2:]
    label_pattern = text.endswith(".*")
    if label_pattern:
        text = text[:-2]
    if not text:
        raise ValueError(f"empty domain: {raw!r}")
    if "*" in text:
        raise ValueError(f"wildcards are only allowed as '*.example.com' or 'label.*': {raw!r}")
    ascii_host = _to_ascii(text)
    if ascii_host is None or len(ascii_host) > MAX_DOMAIN:
        raise ValueError(f"malformed domain: {raw!r}")
    labels = ascii_host.split(".")
    if not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError(f"malformed domain: {raw!r}")
    if label_pattern:
        if len(labels) != 1:
            raise ValueError(f"a 'label.*' pattern takes a single label: {raw!r}")
        return f"{ascii_host}.*"
    return ascii_host


def _category(
    name: str, description: str, apps: Iterable[str], domains: Iterable[str]
) -> ExclusionCategory:
    normalized_apps = frozenset(normalize_app_name(app) for app in apps)
    normalized_domains = frozenset(normalize_domain(domain) for domain in domains)
    return ExclusionCategory(name, description, normalized_apps, normalized_domains)


# Chrome Web Store extension ids: a password manager's extension popup is a page whose host is
# the extension id (chrome-extension://<id>/popup.html), so the id works as a domain entry.
_PASSWORD_MANAGER_EXTENSIONS = (
    "aeblfdkhhhdcdjpifhhbdiojplfjncoa",  # 1Password
    "nngceckbapebfimnlniiiahkandclblb",  # Bitwarden
    "hdokiejnpimakedhajhdlcegeplioahd",  # LastPass
    "fdjamakpfbbddfjaooikfcpapjohcfmg",  # Dashlane
    "oboonakemofpalcgghocfoadofidjkkk",  # KeePassXC-Browser
)

_CATEGORIES = (
    _category(
        "password_managers",
        "Password managers and system keychains: their whole content is credentials.",
        apps=(
            "1Password",
            "1Password 7",
            "1Password 8",
            "com.1password.1password",
            "com.agilebits.onepassword7",
            "Bitwarden",
            "com.bitwarden.desktop",
            "KeePass",
            "KeePass Password Safe",
            "KeePassX",
            "KeePassXC",
            "org.keepassxc.keepassxc",
            "KeeWeb",
            "LastPass",
            "Dashlane",
            "Keeper",
            "Keeper Password Manager",
            "NordPass",
            "RoboForm",
            "Enpass",
            "Proton Pass",
            "Keychain Access",
            "com.apple.keychainaccess",
            "Passwords",
            "Passwords and Keys",
            "Seahorse",
            "KWalletManager",
            "Credential Manager",
        ),
        domains=(
            "1password.com",
            "1password.ca",
            "1password.eu",
            "bitwarden.com",
            "bitwarden.eu",
            "lastpass.com",
            "dashlane.com",
            "keepersecurity.com",
            "keepersecurity.eu",
            "nordpass.com",
            "roboform.com",
            "enpass.io",
            "pass.proton.me",
            "passwords.google.com",
            "passwords.google",
            "keeweb.info",
            *_PASSWORD_MANAGER_EXTENSIONS,
        ),
    ),
    _category(
        "banking",
        "Banks, card issuers, brokers and payment services.",
        apps=(
            "Chase",
            "Chase Mobile",
            "Bank of America",
            "Wells Fargo",
            "Capital One",
            "PayPal",
            "Venmo",
            "Cash App",
            "Zelle",
            "Revolut",
            "Monzo",
            "N26",
            "Wise",
            "Starling Bank",
            "Quicken",
            "YNAB",
            "Robinhood",
            "Coinbase",
        ),
        domains=(
            "chase.com",
            "bankofamerica.com",
            "wellsfargo.com",
            "citi.com",
            "citibank.com",
            "capitalone.com",
            "usbank.com",
            "pnc.com",
            "tdbank.com",
            "truist.com",
            "ally.com",
            "discover.com",
            "americanexpress.com",
            "schwab.com",
            "fidelity.com",
            "vanguard.com",
            "etrade.com",
            "robinhood.com",
            "coinbase.com",
            "paypal.com",
            "venmo.com",
            "cash.app",
            "zellepay.com",
            "chime.com",
            "sofi.com",
            "mint.intuit.com",
            "ynab.com",
            "hsbc.com",
            "hsbc.co.uk",
            "barclays.co.uk",
            "lloydsbank.com",
            "natwest.com",
            "santander.co.uk",
            "santander.com",
            "monzo.com",
            "starlingbank.com",
            "revolut.com",
            "wise.com",
            "n26.com",
            "ing.com",
            "ing.nl",
            "ing.de",
            "bnpparibas.net",
            "credit-agricole.fr",
            "societegenerale.fr",
            "deutsche-bank.de",
            "commerzbank.de",
            "sparkasse.de",
            "rbcroyalbank.com",
            "td.com",
            "scotiabank.com",
            "bmo.com",
            "cibc.com",
        ),
    ),
    _category(
        "health",
        "Patient portals, telehealth, pharmacies' patient sites and health reference sites.",
        apps=(
            "MyChart",
            "Epic MyChart",
            "FollowMyHealth",
            "Teladoc",
            "Teladoc Health",
            "Zocdoc",
            "BetterHelp",
            "Talkspace",
            "GoodRx",
            "Apple Health",
        ),
        domains=(
            "mychart.*",
            "mychart.com",
            "followmyhealth.com",
            "patientportal.*",
            "webmd.com",
            "mayoclinic.org",
            "healthline.com",
            "medlineplus.gov",
            "zocdoc.com",
            "teladoc.com",
            "teladochealth.com",
            "onemedical.com",
            "myhealth.va.gov",
            "healthcare.gov",
            "goodrx.com",
            "betterhelp.com",
            "talkspace.com",
            "23andme.com",
            "patient.info",
            "doctolib.fr",
            "doctolib.de",
        ),
    ),
    _category(
        "personal_mail",
        "Consumer webmail. mail.google.com also serves Google Workspace mail and icloud.com"
        " also serves iCloud Drive: neither can be told apart by host, so each is excluded"
        " whole.",
        apps=(
            "Proton Mail",
            "ProtonMail",
            "Proton Mail Bridge",
            "Tuta",
            "Tutanota",
        ),
        domains=(
            "mail.google.com",
            "inbox.google.com",
            "outlook.live.com",
            "mail.live.com",
            "hotmail.com",
            "mail.yahoo.com",
            "mail.aol.com",
            "proton.me",
            "protonmail.com",
            "tuta.com",
            "tutanota.com",
            "icloud.com",
            "fastmail.com",
            "gmx.com",
            "gmx.net",
            "gmx.de",
            "web.de",
            "mail.yandex.ru",
            "mail.yandex.com",
            "mail.ru",
        ),
    ),
    _category(
        "personal_social",
        "Social networks and personal messengers (opt-in per dataset).",
        apps=(
            "WhatsApp",
            "Telegram",
            "Telegram Desktop",
            "Signal",
            "Messenger",
            "Facebook",
            "Instagram",
            "TikTok",
            "Snapchat",
        ),
        domains=(
            "facebook.com",
            "messenger.com",
            "instagram.com",
            "twitter.com",
            "x.com",
            "tiktok.com",
            "reddit.com",
            "snapchat.com",
            "whatsapp.com",
            "web.telegram.org",
            "signal.org",
            "bsky.app",
            "threads.net",
        ),
    ),
    _category(
        "dating",
        "Dating services (opt-in per dataset).",
        apps=("Tinder", "Bumble", "Hinge", "Grindr", "OkCupid"),
        domains=(
            "tinder.com",
            "bumble.com",
            "hinge.co",
            "match.com",
            "okcupid.com",
            "grindr.com",
            "pof.com",
            "eharmony.com",
        ),
    ),
)

#: Every built-in category by name.
BUILTIN_CATEGORIES: Mapping[str, ExclusionCategory] = MappingProxyType(
    {category.name: category for category in _CATEGORIES}
)

#: Categories applied to every dataset, whatever it configures.
ALWAYS_ON: frozenset[str] = frozenset({"password_managers", "banking", "health", "personal_mail"})


class ExclusionMatcher:
    """The exclusions in force for one dataset, compiled for per-event lookups.

    Built once per policy: app names go into one dict, domains into another keyed by the exact
    host, so that a host is checked with one lookup per label suffix rather than a scan of the
    list. Lookups answer where the match came from (a category name or ``"dataset"``), which
    is safe to report: it never echoes the event's content.
    """

    __slots__ = ("_apps", "_domains", "_labels")

    def __init__(
        self,
        apps: Iterable[str] = (),
        domains: Iterable[str] = (),
        categories: Iterable[str] = (),
    ) -> None:
        """Combine the always-on categories, extra ``categories`` and the dataset's own lists.

        ``apps`` and ``domains`` must already be normalized (see ``validate_dataset_exclusions``
        in ``vault.domain.collection``); an unknown category raises ``ValueError``.
        """
        self._apps: dict[str, str] = {}
        self._domains: dict[str, str] = {}
        self._labels: dict[str, str] = {}
        # Dataset entries go in first so that a built-in category, added afterwards, is what
        # gets reported when both list the same name: the more informative source.
        for app in apps:
            self._apps[app] = DATASET_SOURCE
        for domain in domains:
            self._add_domain(domain, DATASET_SOURCE)
        names = set(ALWAYS_ON)
        for name in categories:
            if name not in BUILTIN_CATEGORIES:
                raise ValueError(f"unknown exclusion category: {name!r}")
            names.add(name)
        for name in sorted(names):
            category = BUILTIN_CATEGORIES[name]
            for app in category.apps:
                self._apps[app] = name
            for domain in category.domains:
                self._add_domain(domain, name)

    def _add_domain(self, domain: str, source: str) -> None:
        if domain.endswith(".*"):
            self._labels[domain[:-2]] = source
        else:
            self._domains[domain] = source

    def app_source(self, app: str) -> str | None:
        """Where ``app`` is excluded from (category or ``"dataset"``), or ``None``.

        Only the whole app name is compared (after normalization), never a substring or the
        window title: "Chase" must not exclude "Paper Chase Editor".
        """
        return self._apps.get(normalize_app_name(app))

    def host_source(self, host: str) -> str | None:
        """Where ``host`` is excluded from, or ``None``.

        ``host`` must be in ``canonical_host`` form. It matches a domain ``d`` when it is ``d``
        or ends with ``"." + d``; ``notchase.com`` does not match ``chase.com``.
        """
        source = self._domains.get(host)
        if source is not None:
            return source
        labels = host.split(".")
        for index in range(1, len(labels)):
            source = self._domains.get(".".join(labels[index:]))
            if source is not None:
                return source
        if self._labels:
            for label in labels[:-1]:
                source = self._labels.get(label)
                if source is not None:
                    return source
        return None
