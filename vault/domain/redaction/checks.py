"""Candidate validators: checksums, ranges and entropy (docs/redaction.md cites each source).

Every function here is pure and runs on one candidate, never on the whole text, so their cost
is paid only by the few strings the patterns let through.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import math
import re
import zlib
from collections import Counter
from operator import mul

from vault.domain.redaction.engine import has_context

__all__ = [
    "LOWER_STREET_WORDS",
    "card_ok",
    "entropy",
    "github_checksum_ok",
    "iban_ok",
    "icao_check_ok",
    "ip_ok",
    "jwt_ok",
    "looks_random",
    "luhn_ok",
    "phone_ok",
    "ssn_ok",
    "street_evidence",
    "street_typed",
    "value_ok",
]


def luhn_ok(digits: str) -> bool:
    """ISO/IEC 7812-1 Annex B (Luhn) check digit."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        number = ord(char) - 48
        if index % 2:
            number *= 2
            if number > 9:
                number -= 9
        total += number
    return total % 10 == 0


def entropy(value: str) -> float:
    """Shannon entropy of ``value`` in bits per character."""
    if not value:
        return 0.0
    size = len(value)
    # The same terms in the same order as a sum of n/size * log2(n/size), mapped in C.
    shares = [n / size for n in Counter(value).values()]
    return -float(sum(map(mul, shares, map(math.log2, shares))))


_HEX = frozenset("0123456789abcdefABCDEF")


def looks_random(value: str) -> bool:
    """Whether ``value`` looks machine-generated enough to be a credential.

    Thresholds per alphabet (hex carries at most 4 bits a character, base64 6): at least two
    of lower/upper/digit, and an entropy near what a random string of that alphabet and
    length would show. Words joined by ``_``/``-`` (``insert_key_here``) fail the first test.
    """
    size = len(value)
    if size < 8:
        return False
    classes = (
        any(map(str.islower, value)) + any(map(str.isupper, value)) + any(map(str.isdigit, value))
    )
    if classes < 2:
        return False
    bits = entropy(value)
    if _HEX.issuperset(value):
        return bits >= min(3.0, math.log2(size) * 0.75)
    return bits >= min(3.5, math.log2(size) * 0.8)


# Values that stand for a secret without being one: variables, templates, empty markers.
# Most are tried once, at the value's start; the last two scan the value, so they are tried
# only on a value that holds one of their words (see _stand_in).
_STAND_IN_AT_START = r"""
    \$\{|\$[A-Za-z_]\w*$|%[sd]$|%\(\w+\)[sd]$|%\w+%$|[<{\[]|\#\{|\.\.\.|os\.|env\.|process\.env
    |getenv|none$|null$|nil$|true$|false$
    |undefined$|password$|passwd$|secret$|changeit$|xxx+$|\*+$|redacted$|hidden$|example$
    |your[_-]|my[_-]|insert[_ -]|enter[_ -]|<"""
_STAND_IN_WITHIN = r""".{0,200}(?:x{6}|X{6}|\*{6})$|.{0,512}(?:EXAMPLE|fake|dummy)"""
_STAND_IN_FLAGS = re.IGNORECASE | re.VERBOSE
_STAND_IN_START = re.compile(f"^(?:{_STAND_IN_AT_START})", _STAND_IN_FLAGS)
_STAND_IN_SCAN = re.compile(f"(?:{_STAND_IN_WITHIN})", _STAND_IN_FLAGS)
#: What a value holds, lower-cased, whenever _STAND_IN_SCAN matches it: case-insensitive
#: matching takes for these letters only characters that lower-case to them (tested).
_STAND_IN_WORDS = ("xxxxxx", "******", "example", "fake", "dummy")
_STAND_IN_NEEDS = re.compile("|".join(map(re.escape, _STAND_IN_WORDS)))


def _stand_in(value: str) -> bool:
    """Whether ``value`` is a stand-in: one of the forms at its start, or one of the forms
    that scan it, tried only when the words they need are there (the answer of the single
    expression ``^(?:start forms|scanning forms)``; tests compare)."""
    if _STAND_IN_START.match(value) is not None:
        return True
    return (
        _STAND_IN_NEEDS.search(value.lower()) is not None
        and _STAND_IN_SCAN.match(value) is not None
    )


def value_ok(value: str) -> bool:
    """A value assigned to a password-like name: anything but an obvious stand-in."""
    value = value.strip("'\"` ")
    if not value or _stand_in(value):
        return False
    return len(set(value)) > 1


def card_ok(text: str, start: int, end: int) -> bool:
    """A payment card: 12-19 digits, one separator style, a known industry digit, Luhn.

    12-digit numbers (short Maestro cards) need a card word nearby: too many other
    identifiers have that length.
    """
    raw = text[start:end]
    separators = {c for c in raw if not c.isdigit()}
    if len(separators) > 1:
        return False
    digits = raw.replace(" ", "").replace("-", "")
    if not 12 <= len(digits) <= 19 or digits[0] not in "123456":
        return False
    if separators and any(len(g) < 3 for g in re.split(r"[ -]", raw)):
        return False
    if len(digits) < 13 and not has_context(text, start, end, _CARD_WORDS, 40):
        return False
    if re.search(r"[A-Za-z]{2}\d{2}[ -]?$", text[max(0, start - 5) : start]):
        return False  # the middle of an IBAN
    return luhn_ok(digits) and len(set(digits)) > 1


_CARD_WORDS = ("card", "visa", "master", "amex", "maestro", "cc ", "cc#", "credit", "debit")

# ISO 13616 registry (SWIFT, public): country -> IBAN length.
_IBAN_LENGTHS: dict[str, int] = {
    "AD": 24,
    "AE": 23,
    "AL": 28,
    "AT": 20,
    "AZ": 28,
    "BA": 20,
    "BE": 16,
    "BG": 22,
    "BH": 22,
    "BI": 27,
    "BR": 29,
    "BY": 28,
    "CH": 21,
    "CR": 22,
    "CY": 28,
    "CZ": 24,
    "DE": 22,
    "DJ": 27,
    "DK": 18,
    "DO": 28,
    "EE": 20,
    "EG": 29,
    "ES": 24,
    "FI": 18,
    "FK": 18,
    "FO": 18,
    "FR": 27,
    "GB": 22,
    "GE": 22,
    "GI": 23,
    "GL": 18,
    "GR": 27,
    "GT": 28,
    "HN": 28,
    "HR": 21,
    "HU": 28,
    "IE": 22,
    "IL": 23,
    "IQ": 23,
    "IS": 26,
    "IT": 27,
    "JO": 30,
    "KW": 30,
    "KZ": 20,
    "LB": 28,
    "LC": 32,
    "LI": 21,
    "LT": 20,
    "LU": 20,
    "LV": 21,
    "LY": 25,
    "MC": 27,
    "MD": 24,
    "ME": 22,
    "MK": 19,
    "MN": 20,
    "MR": 27,
    "MT": 31,
    "MU": 30,
    "NI": 28,
    "NL": 18,
    "NO": 15,
    "OM": 23,
    "PK": 24,
    "PL": 28,
    "PS": 29,
    "PT": 25,
    "QA": 29,
    "RO": 24,
    "RS": 22,
    "RU": 33,
    "SA": 24,
    "SC": 31,
    "SD": 18,
    "SE": 24,
    "SI": 19,
    "SK": 24,
    "SM": 27,
    "SO": 23,
    "ST": 25,
    "SV": 28,
    "TL": 23,
    "TN": 24,
    "TR": 26,
    "UA": 29,
    "VA": 22,
    "VG": 24,
    "XK": 20,
    "YE": 30,
}


def iban_ok(text: str, start: int, end: int) -> bool | int:
    """ISO 13616: the country's registered length and the ISO 7064 mod-97-10 check.

    Returns where the IBAN ends when the pattern also took a following word ("... ALL").
    """
    real_end = iban_end(text, start, end)
    if real_end is None:
        return False
    if real_end < len(text) and text[real_end].isalnum():
        return False
    iban = text[start:real_end].replace(" ", "").replace("-", "").upper()
    expected = _IBAN_LENGTHS.get(iban[:2])
    if expected is None or len(iban) != int(expected):
        return False
    rearranged = iban[4:] + iban[:4]
    number = "".join(str(int(c, 36)) for c in rearranged)
    if int(number) % 97 != 1:
        return False
    return True if real_end == end else real_end


def iban_end(text: str, start: int, end: int) -> int | None:
    """Where the IBAN starting at ``start`` ends, trimming groups the pattern took too many."""
    raw = text[start:end]
    expected = _IBAN_LENGTHS.get(raw[:2].upper())
    if expected is None:
        return None
    want, seen = expected, 0
    for offset, char in enumerate(raw):
        if char not in " -":
            seen += 1
            if seen == want:
                return start + offset + 1
    return None


# SSA: area 000, 666 and 900-999 are never issued; group 00 and serial 0000 neither; a few
# numbers were voided after appearing in advertising.
_SSN_VOID = frozenset({"078051120", "219099999", "123456789"})
_SSN_WORDS = ("ssn", "social security", "social sec", "ss#", "ssid", "sozialversicherung")


def ssn_ok(text: str, start: int, end: int) -> bool:
    """A US social security number outside the SSA's never-issued ranges.

    Separators, when present, are one kind; nine bare digits need an SSN word nearby.
    """
    raw = text[start:end]
    separators = {c for c in raw if not c.isdigit()}
    if len(separators) > 1:
        return False
    digits = "".join(c for c in raw if c.isdigit())
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return False
    if digits in _SSN_VOID:
        return False
    if not separators or raw.count(next(iter(separators))) < 2:
        return has_context(text, start, end, _SSN_WORDS, 40)
    return True


def itin_ok(text: str, start: int, end: int) -> bool:
    """A US ITIN: area 9xx and group 50-65, 70-88, 90-92 or 94-99 (IRS)."""
    raw = text[start:end]
    if len({c for c in raw if not c.isdigit()}) > 1:
        return False
    digits = "".join(c for c in raw if c.isdigit())
    group = int(digits[3:5])
    return 50 <= group <= 65 or 70 <= group <= 88 or 90 <= group <= 92 or group >= 94


# Addresses that identify no one: loopback, unspecified, limited broadcast, cloud metadata.
_NOT_PERSONAL = frozenset({"255.255.255.255", "169.254.169.254"})


def ip_ok(text: str, start: int, end: int) -> bool:
    """A valid IPv4/IPv6 address (optional zone and prefix length) that can point at a host.

    Private (RFC 1918, ULA, link-local) addresses are kept as personal: inside a company
    network they identify a device and so its user.
    """
    raw = text[start:end]
    if end < len(text) and (text[end].isalnum() or text[end] == "_"):
        return False
    core = raw.split("/", 1)[0]
    try:
        address = ipaddress.ip_address(core)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        if ":" not in core:
            return False
        mapped = address.ipv4_mapped
        if mapped is not None:
            address = mapped
    if address.is_loopback or address.is_unspecified:
        return False
    return str(address) not in _NOT_PERSONAL


_PHONE_WORDS = (
    "phone",
    "tel",
    "mobile",
    "cell",
    "fax",
    "call",
    "contact",
    "whatsapp",
    "sms",
    "text me",
    "office",
    "message",
    "desk",
    "mob",
    "number",
    "telefon",
    "téléphone",
    "teléfono",
    "handy",
    "ring",
    "reach me",
    "dial",
)


def phone_ok(text: str, start: int, end: int) -> bool:
    """A phone number: 7-15 digits; a strong shape, or a phone word nearby.

    Strong shapes: a ``+`` country code, the North American ``(NXX) NXX-XXXX`` and
    ``NXX-NXX-XXXX`` forms, and (v5) the Turkish and Philippine national forms
    (``_NATIONAL_MOBILE``).
    """
    raw = text[start:end]
    digits = "".join(c for c in raw if c.isdigit())
    if not 7 <= len(digits) <= 15 or len(set(digits)) < 3:
        return False
    if has_context(text, start, end, _CARD_WORDS, 30):
        return False
    if raw.startswith("+"):
        return len(digits) >= 8
    if _NANP.fullmatch(raw) or _NATIONAL_MOBILE.fullmatch(raw):
        return True
    return has_context(text, start, end, _PHONE_WORDS, 40)


_NANP = re.compile(r"\(?[2-9]\d\d\)?[ .-]?[2-9]\d\d[.-]\d{4}|\([2-9]\d\d\) ?[2-9]\d\d ?\d{4}")
# Turkey (BTK numbering plan): area or mobile code 2xx-5xx written 3-3-2-2 with one separator
# kind, optionally after the trunk 0 (0 532 123 45 67, 0216-123-45-67, 532.123.45.67); and
# 11-digit national numbers written bare: Turkish 0 + 2xx-5xx, Philippine mobiles 09xx
# (NTC), these also grouped 4-3-4 (0917-123-4567).
_NATIONAL_MOBILE = re.compile(
    r"(?:0[ -]?)?[2-5]\d\d([ .-])\d{3}\1\d{2}\1\d{2}|0[2-5]\d{9}|09\d\d(?:([ -])\d{3}\2|\d{3})\d{4}"
)


def _b64url_json(segment: str) -> object:
    padded = segment + "=" * (-len(segment) % 4)
    try:
        return json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
        return None


def jwt_ok(text: str, start: int, end: int) -> bool:
    """RFC 7519: the header segment decodes (base64url) to a JSON object."""
    header = text[start:end].split(".", 1)[0]
    return isinstance(_b64url_json(header), dict)


_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _base62(number: int, width: int) -> str:
    out = ""
    while number:
        number, digit = divmod(number, 62)
        out = _BASE62[digit] + out
    return out.rjust(width, "0")


def github_checksum_ok(token: str) -> bool:
    """GitHub's 2021 token format: the last 6 characters are base62(CRC32(random part))."""
    body = token.split("_", 1)[-1]
    if len(body) != 36:
        return False
    random_part, check = body[:30], body[30:]
    return _base62(zlib.crc32(random_part.encode()), 6) == check


def token_ok(text: str, start: int, end: int) -> bool:
    """A prefixed token: a valid checksum, or a body that is not a documentation filler.

    ``ghp_xxxx…``/``ghp_****…`` are stand-ins in docs and templates; anything else with the
    prefix and length is taken, checksum or not. Policy: a wrong checksum is most often a typo
    or a truncated copy of a real token, which still gives away all but a character or two of
    it, so it is redacted too (docs/redaction.md, "Checksums").
    """
    token = text[start:end]
    if github_checksum_ok(token):
        return True
    body = token.split("_", 1)[-1] if "_" in token[:12] else token.split("-", 1)[-1]
    return not set(body) <= set("xX*")


# --- street addresses ------------------------------------------------------------------------
# Street-type words that stand as a word of their own (lower-case, dots stripped): English
# suffixes (only when capitalised: "the main road 5" is prose), and the Romance, Slavic, Baltic,
# Nordic and Hungarian types, which are also written in lower case (Király u. 15, Luite tee 87,
# ul. Cicha 86, Trenerys gate 232).
_TRAILING_TYPES = frozenset(
    (
        "gate",
        "gata",
        "gatan",
        "vei",
        "veg",
        "vej",
        "wei",
        "gade",
        "tee",
        "põik",
        "tänav",
        "iela",
        "gatve",
        "terrasse",
        "plass",
        "torg",
        "utca",
        "út",
        "útja",
        "tér",
        "u",
        "körút",
        "krt",
        "rkp",
        "köz",
        "sor",
        "sétány",
        "sokak",
        "sokağ\u0131",
        "caddesi",
        "cad",
        "bulvar\u0131",
    )
)
_LEADING_TYPES = frozenset(
    (
        "r",
        "rotonda",
        "borgo",
        "piazzale",
        "lungomare",
        "traversa",
        "rodovia",
        "ladeira",
        "viela",
        "beco",
        "vila",
        "quadra",
        "setor",
        "pátio",
        "esplanada",
        "viaduto",
        "rue",
        "chemin",
        "impasse",
        "quai",
        "allée",
        "allé",
        "route",
        "cours",
        "via",
        "viale",
        "corso",
        "piazza",
        "piazzetta",
        "vicolo",
        "largo",
        "strada",
        "contrada",
        "calle",
        "c/",
        "avenida",
        "avda",
        "paseo",
        "camino",
        "carrer",
        "avinguda",
        "rambla",
        "ronda",
        "travesía",
        "rua",
        "rúa",
        "travessa",
        "praça",
        "praca",
        "estrada",
        "alameda",
        "ul",
        "ulica",
        "aleja",
        "al",
        "plac",
        "os",
        "osiedle",
        "trg",
        "cesta",
        "ulice",
        "náměstí",
        "nám",
        "třída",
        "nábřeží",
        "straße",
        "strasse",
        "str",
        "weg",
        "gasse",
        "platz",
        "allee",
    )
)
#: Street types that may be written in lower case inside a name (the patterns use them).
LOWER_STREET_WORDS = _TRAILING_TYPES | _LEADING_TYPES
# Capitalised, the Nordic/Hungarian trailing words are other things ("Gate 12" at an airport).
_STREET_WORDS = _LEADING_TYPES | frozenset(
    (
        "street",
        "st",
        "avenue",
        "ave",
        "av",
        "road",
        "rd",
        "boulevard",
        "blvd",
        "bd",
        "lane",
        "ln",
        "drive",
        "dr",
        "court",
        "ct",
        "place",
        "pl",
        "way",
        "terrace",
        "ter",
        "circle",
        "cir",
        "highway",
        "hwy",
        "parkway",
        "pkwy",
        "square",
        "sq",
        "trail",
        "trl",
        "crescent",
        "cres",
        "alley",
        "loop",
        "plaza",
        "row",
        "walk",
        "close",
        "pike",
        "ridge",
        "path",
        "heights",
        "hts",
        "crossing",
        "parade",
        "esplanade",
        "promenade",
        "grove",
        "gardens",
        "mews",
        "quay",
        "wharf",
    )
)
_TYPE_BEFORE = re.compile(r"(?:(?<![^\W\d_])(?:ul|al|pl|os|av|avda|str|trg)\. ?|[Cc]/ ?)$")
# Compound street names end in their type (Laukaantie, Ringvej, Hauptstraße, Kalverstraat).
_STREET_ENDINGS: tuple[str, ...] = (
    "straße",
    "strasse",
    "str.",
    "straat",
    "laan",
    "gracht",
    "weg",
    "gasse",
    "platz",
    "allee",
    "plein",
    "kade",
    "dreef",
    "singel",
    "steeg",
    "dijk",
    "vej",
    "gade",
    "stræde",
    "plads",
    "gatan",
    "vägen",
    "gränd",
    "torget",
    "gata",
    "veien",
    "vegen",
    "veg",
    "vei",
    "stien",
    "katu",
    "tie",
    "kuja",
    "polku",
    "braut",
    "vegur",
    "stræti",
    "straeti",
    "stígur",
    "tänav",
    "ulica",
    "utca",
    # German, Austrian, Dutch, Norwegian types also written as one word (Kurfürstendamm,
    # Jeanbaan, Solbakken); not "ring", "pad", "gate", "hof": English and German words end so
    "damm",
    "ufer",
    "chaussee",
    "steig",
    "pfad",
    "gürtel",
    "zeile",
    "kai",
    "baan",
    "gaten",
    "bakken",
    "svingen",
    "tunet",
    "kroken",
    "haugen",
    "åsen",
    "løkka",
    "brinken",
    "bråten",
    "jordet",
    "sletta",
    "toppen",
)
# A compound: at least three letters (or two and a dash) before a short type ending, two before
# a longer one (Ekvägen), then the ending.
_COMPOUND = re.compile(
    r"[^\W\d_]{2}(?:[^\W\d_]|-|[^\W\d_]-)(?:"
    + "|".join(re.escape(e) for e in _STREET_ENDINGS if len(e) <= 4)
    + r")\Z|[^\W\d_]{2}-?(?:"
    + "|".join(re.escape(e) for e in _STREET_ENDINGS if len(e) > 4)
    + r")\Z"
)
_POSTAL_DIGITS = re.compile(r"\d{3}")
_UNIT_WORD = re.compile(
    r"(?<![^\W\d_])(?:apt|apartment|suite|ste|unit|flat|floor|fl|room|rm|bldg|building|lgh"
    r"|piano|interno|int|scala)\b"
    r"\.? {0,2}#?[A-Za-z]?\d",
    re.IGNORECASE,
)
_ADDRESS_WORDS = (
    "address",
    "lives at",
    "live at",
    "living at",
    "lives on",
    "located at",
    "office is at",
    "offices are",
    "sent to",
    "send to",
    "ship to",
    "shipped to",
    "deliver",
    "return to",
    "mail to",
    "moved to",
    "arrived at",
    "meet",
    "drops you off",
    "drop off",
    "drop-off",
    "pick up at",
    "pick-up",
    "adresse",
    "anschrift",
    "dirección",
    "direccion",
    "indirizzo",
    "endereço",
    "morada",
    "adres",
    "osoite",
    "wohnt",
)
_ADDRESS_CONTEXT = re.compile("|".join(re.escape(w) for w in _ADDRESS_WORDS), re.IGNORECASE)
_NAME_WORD = re.compile(r"[^\W\d_][\w'./-]*")
_DATE_WORD = re.compile(
    r"\b(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?"
    r"|(?:mon|tues?|wed(?:nes)?|thu(?:rs)?|fri|sat(?:ur)?|sun)(?:day)?)\b",
    re.IGNORECASE,
)


def street_typed(words: str) -> bool:
    """Whether ``words`` (a street name) are a compound street name (Laukaantie, Ringvej) or
    hold a street-type word beside at least one other word (Via Roma, Király u.; "Gate" or
    "Via" alone is not a street)."""
    found = _NAME_WORD.findall(words)
    for word in found:
        lower = word.lower()
        if _COMPOUND.search(lower):
            return True
        types = LOWER_STREET_WORDS if word[0].islower() else _STREET_WORDS
        if len(found) > 1 and lower.rstrip(".") in types:
            return True
    return False


def street_evidence(text: str, start: int, core_end: int, end: int, numbers: int) -> int:
    """How strongly the candidate ``text[start:end]`` reads as a street address (>= 2: it does).

    ``text[start:core_end]`` is the street line (name, numbers), the rest the block that
    follows (unit, city, region, postal code lines); ``numbers`` counts the street line's
    numbers. Two points for a street type in the name (or an abbreviated type just before the
    candidate: ``ul.``, ``C/``); one each for a building number before the street (Faker's and
    many forms' ``<building> <street> <house>``), a unit after it, a city/region/postal block
    of two segments or more holding a postal code, and an address word (address, lives at,
    ship to...) within 50 characters before it. A day or month name without a street type
    ("27 June 1973") scores 0. The cheap signs are read first: the type (the costliest) only
    when they do not settle it.
    """
    tail = text[core_end:end]
    score = 1 if numbers >= 2 else 0
    if _UNIT_WORD.search(text, core_end, end):
        score += 1
    if (tail.count(",") + tail.count("\n")) >= 2 and _POSTAL_DIGITS.search(tail):
        score += 1
    if _ADDRESS_CONTEXT.search(text, max(0, start - 50), start):
        score += 1
    dated = _DATE_WORD.search(text, start, core_end) is not None
    if score >= 2 and not dated:
        return score
    core = text[start:core_end]
    if street_typed(core) or _TYPE_BEFORE.search(text, max(0, start - 6), start):
        return score + 2
    return 0 if dated else score


def icao_check_ok(text: str, start: int, end: int) -> bool:
    """ICAO 9303 part 3 check digit: the last character is the weighted (7, 3, 1) sum of the
    others mod 10, digits as themselves and letters A=10 ... Z=35; at least 4 digits."""
    value = text[start:end].upper()
    body, check = value[:-1], value[-1]
    if sum(c.isdigit() for c in body) < 4 or not check.isdigit():
        return False
    total = 0
    for index, char in enumerate(body):
        number = ord(char) - 48 if char.isdigit() else ord(char) - 55
        total += number * (7, 3, 1)[index % 3]
    return total % 10 == int(check)
