"""Personal-data detectors: e-mail, phone, government ids, cards, IBANs, IPs, dates of birth.

Numbers are the hard part: most numbers in telemetry are not personal. Each numeric rule
therefore has a validator (Luhn, mod-97, SSA ranges, address validity) or needs a context word
near the candidate; docs/redaction.md gives the reasoning rule by rule.
"""

from __future__ import annotations

from vault.domain.redaction.checks import card_ok, iban_ok, ip_ok, itin_ok, phone_ok, ssn_ok
from vault.domain.redaction.engine import Rule, has_context

__all__ = ["PII_RULES"]

_DIGITS = "0123456789"

# A run of 7+ digits, possibly grouped: phones, SSNs, cards, IBANs, IPv4 addresses.
_NUMERIC = r"\d[\d .()/-]{5,}\d"
_EXTENSION = r"(?: ?(?:x|ext\.?) ?\d{1,6})?"
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]{0,6}\.?"
_DATE = (
    r"(?:\d{4}-\d{1,2}-\d{1,2}|\d{1,2}[./-]\d{1,2}[./-]\d{2,4}"
    rf"|\d{{1,2}}(?:st|nd|rd|th)?[ -](?:of )?{_MONTH},?[ -]\d{{2,4}}"
    rf"|{_MONTH} \d{{1,2}}(?:st|nd|rd|th)?,? \d{{2,4}})"
)
# Accented letters of street names (Latin-1), as explicit ranges: ``re.ASCII`` leaves them alone.
_UP = "\xc0-\xd6\xd8-\xde"
_LOW = "\xdf-\xf6\xf8-\xff"
# A capitalised word of a street name (letters, apostrophes, dots, dashes), and 1-4 of them.
_NAME_WORD = f"[A-Z{_UP}][A-Za-z{_UP}{_LOW}'.-]{{1,25}}"
_NAME_WORDS = f"{_NAME_WORD}(?: {_NAME_WORD}){{0,3}}"
_STREET_SUFFIX = (
    r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Place|Pl|Way"
    r"|Terrace|Ter|Circle|Cir|Highway|Hwy|Parkway|Pkwy|Square|Sq|Trail|Trl|Crescent|Cres"
    r"|Alley|Loop|Plaza|Row|Walk|Close|Pike|Ridge|Path|Heights|Hts|Crossing|Parade|Esplanade"
    r"|Promenade|Grove|Gardens|Mews|Quay|Wharf)"
)


def _digits_at_least(count: int, length: tuple[int, int]) -> object:
    def check(text: str, start: int, end: int) -> bool:
        value = text[start:end]
        digits = sum(c.isdigit() for c in value)
        return digits >= count and length[0] <= len(value) <= length[1]

    return check


def _passport_ok(text: str, start: int, end: int) -> bool:
    """Five digits or more (6-12 characters), or an 8-9 character upper-case code with a
    digit (German, Indian, Korean... passports mix letters and digits)."""
    value = text[start:end]
    digits = sum(c.isdigit() for c in value)
    if digits >= 5 and 6 <= len(value) <= 12:
        return True
    return 8 <= len(value) <= 9 and digits >= 1 and value.upper() == value


def _uk_licence_ok(text: str, start: int, end: int) -> bool:
    """DVLA number: month 01-12 (51-62 for women) and day 01-31 of birth at offsets 6-9."""
    value = text[start:end]
    month, day = int(value[6:8]), int(value[8:10])
    return (1 <= month <= 12 or 51 <= month <= 62) and 1 <= day <= 31


def _itin_ok(text: str, start: int, end: int) -> bool:
    if not itin_ok(text, start, end):
        return False
    raw = text[start:end]
    return not raw.isdigit() or has_context(text, start, end, ("itin", "tax", "taxpayer"), 40)


# Extensions of files named like ``logo@2x.png`` (density variants), never a mail domain.
_FILE_EXTENSIONS = frozenset(
    {"png", "jpg", "jpeg", "gif", "svg", "webp", "avif", "ico", "bmp", "tif", "tiff", "pdf"}
)


def _email_ok(text: str, start: int, end: int) -> bool:
    """An address, not a file name (``icon@2x.png``: every domain label holds a digit and the
    top level is an image or document extension) nor a Git SSH remote (``git@github.com``)."""
    local, _, domain = text[start:end].rpartition("@")
    labels = domain.split(".")
    if labels[-1].lower() in _FILE_EXTENSIONS and all(
        any(c.isdigit() for c in label) for label in labels[:-1]
    ):
        return False
    return local != "git"


PII_RULES: tuple[Rule, ...] = (
    Rule(
        "email",
        "EMAIL",
        # ASCII addresses (IDN domains in their xn-- form); the local part is anchored at the
        # start of its run so that a failed attempt is not retried at every position inside.
        r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9_][A-Za-z0-9._%+\-]{0,63}@"
        r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.){1,16}"
        # The top-level label runs to the end of the word: a token glued to an address
        # ("a@b.comghp_…") is redacted with it rather than left half-seen.
        r"[A-Za-z]{2}[A-Za-z0-9_\-]*",
        triggers=("@",),
        validate=_email_ok,
        confidence=0.9,
        needs="@",
    ),
    Rule(
        "credit-card",
        "CREDIT_CARD",
        # Each pattern starts by consuming a digit, its look-behind checked after it: ``re``
        # then skips to digits at C speed instead of trying the look-behind everywhere.
        r"\d(?<![\w.,-]\d)(?:\d{11,18}|\d{3}([ -])\d{4}\1\d{4}\1\d{1,7}|\d{3}([ -])\d{6}\2\d{4,5})"
        r"(?![\w]|[.,-]\d)",
        gate=_NUMERIC,
        validate=card_ok,
        confidence=0.9,
        needs=_DIGITS,
    ),
    Rule(
        "iban",
        "IBAN",
        r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?:[ -]?[A-Za-z0-9]{4}){2,7}(?:[ -]?[A-Za-z0-9]{1,4})?"
        r"(?![A-Za-z0-9])",
        gate=r"\d(?<=[A-Za-z]{2}\d)\d[ -]?[A-Za-z0-9]{4}",
        validate=iban_ok,
        confidence=0.92,
        needs=_DIGITS,
    ),
    Rule(
        "us-ssn",
        "US_SSN",
        r"\d(?<![\w.-]\d)\d{2}[ .-]?\d{2}[ .-]?\d{4}(?![\w]|[.-]\d)",
        gate=_NUMERIC,
        validate=ssn_ok,
        confidence=0.85,
        needs=_DIGITS,
    ),
    Rule(
        "us-itin",
        "US_ITIN",
        r"9(?<![\w.-]9)\d{2}[ .-]?\d{2}[ .-]?\d{4}(?![\w]|[.-]\d)",
        gate=_NUMERIC,
        validate=_itin_ok,
        confidence=0.85,
        needs=_DIGITS,
    ),
    Rule(
        "ipv4",
        "IP_ADDRESS",
        rf"(?<![\w.]){_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}(?:/(?:3[0-2]|[12]?\d))?(?![\w]|\.\d)",
        gate=r"\d\.\d{1,3}\.\d",
        validate=ip_ok,
        confidence=0.85,
        needs=_DIGITS,
    ),
    Rule(
        "ipv6",
        "IP_ADDRESS",
        r"(?<![\w:.])(?=[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:)[0-9A-Fa-f:.]{1,44}[0-9A-Fa-f:]"
        r"(?:%[A-Za-z0-9]{1,16})?(?:/\d{1,3}(?!\d))?",
        gate=r":[0-9A-Fa-f]{0,4}:",
        validate=ip_ok,
        confidence=0.85,
        needs=":",
    ),
    Rule(
        "phone-international",
        "PHONE",
        r"(?<![\w+])\+[1-9]\d{0,3}(?:[ .\-]{0,2}(?:\(\d{1,5}\)|\d++)){1,8}"
        + _EXTENSION
        + r"(?!\w)",
        triggers=("+",),
        validate=phone_ok,
        confidence=0.8,
        needs="+",
    ),
    Rule(
        "phone-national",
        "PHONE",
        r"(?:\((?<![\w+.\-/:]\()\d{1,5}\)[ .\-]?\d++|\d(?<![\w+.\-/:]\d)\d*+)(?:[ .\-/]\d++){0,5}"
        + _EXTENSION
        + r"(?!\w|[.\-/:]\d)",
        gate=_NUMERIC,
        validate=phone_ok,
        confidence=0.6,
        needs=_DIGITS,
    ),
    Rule(
        "date-of-birth",
        "DATE_OF_BIRTH",
        r"(?:(?<![A-Za-z])d\.?o\.?b\.?|date of birth|birth ?date|birthday|born(?: on| in)?"
        r"|geburtsdatum|geboren(?: am)?|fecha de nacimiento|date de naissance|n[e\xe9]e? le)"
        rf"[\s:=\"'-]{{0,4}}(?:is |was |on |:)?\s{{0,2}}(?P<value>{_DATE}|(?:19|20)\d\d(?!\d))",
        triggers=(
            "dob",
            "d.o.b",
            "birth",
            "born",
            "geburtsdatum",
            "geboren",
            "nacimiento",
            "naissance",
            "e le",
        ),
        ignore_case=True,
        confidence=0.85,
        needs=_DIGITS,
    ),
    Rule(
        "passport-number",
        "PASSPORT",
        r"(?:passport|pasaporte|reisepass|passeport|passaporto|pass-nr|travel document)"
        r"[^\n]{0,30}?(?<![A-Za-z0-9])(?P<value>(?=[A-Za-z]{0,8}\d)[A-Za-z0-9]{6,12})(?![A-Za-z0-9])",
        triggers=(
            "passport",
            "pasaporte",
            "reisepass",
            "passeport",
            "passaporto",
            "pass-nr",
            "travel document",
        ),
        validate=_passport_ok,
        ignore_case=True,
        confidence=0.8,
        needs=_DIGITS,
    ),
    Rule(
        "driving-licence-number",
        "DRIVER_LICENSE",
        r"(?:driv(?:er|ing|ers)'?s?[ -]?licen[cs]e|licen[cs]e (?:no|number|#)"
        r"|(?<![A-Za-z])dl ?(?:no|#)"
        r"|f\xfchrerschein|fuehrerschein|fahrerlaubnis|permis de conduire|licencia de conducir)"
        r"[^\n]{0,30}?(?<![A-Za-z0-9*-])"
        r"(?P<value>(?=[A-Za-z*-]{0,12}\d)[A-Za-z0-9][A-Za-z0-9*-]{4,19})(?![A-Za-z0-9*])",
        triggers=(
            "licen",
            "dl",
            "hrerschein",
            "fuehrerschein",
            "fahrerlaubnis",
            "permis de conduire",
            "licencia de conducir",
        ),
        validate=_digits_at_least(3, (5, 20)),  # type: ignore[arg-type]
        ignore_case=True,
        confidence=0.8,
        needs=_DIGITS,
    ),
    Rule(
        "uk-driving-licence",
        "DRIVER_LICENSE",
        r"(?<![A-Za-z0-9])[A-Za-z9]{5}\d{6}[A-Za-z9]{2}\d[A-Za-z]{2}(?![A-Za-z0-9])",
        gate=r"\d{6}[A-Za-z9]{2}\d[A-Za-z]{2}",
        validate=_uk_licence_ok,
        confidence=0.85,
        needs=_DIGITS,
    ),
    Rule(
        "us-street-address",
        "STREET_ADDRESS",
        r"(?<![\w-])\d{1,6}[A-Za-z]?(?: {1,3}(?:[NSEW]\.?|North|South|East|West))?"
        r"(?: {1,3}(?:[A-Z][A-Za-z'.-]{0,24}|\d{1,3}(?:st|nd|rd|th))){1,4}"
        rf" {{1,3}}{_STREET_SUFFIX}\b\.?"
        r"(?:,? {1,3}(?:Apt|Apartment|Suite|Ste|Unit|Floor|Fl|#)\.? {0,2}#?[A-Za-z0-9-]{1,8})?"
        # then, when present, ", City, ST 12345" (a US state code and ZIP)
        r"(?:, {0,2}[A-Z][a-z]{1,20}(?: [A-Z][a-z]{1,20}){0,2}, {0,2}[A-Z]{2}"
        r" \d{5}(?:-\d{4})?(?!\d))?",
        gate=r"\d [A-Z0-9]",
        confidence=0.7,
        needs=_DIGITS,
    ),
    # Street addresses outside the US, one rule per shape so that each starts by consuming a
    # character (``re`` then skips ahead at C speed). Names are capitalised words; every
    # repetition is bounded.
    Rule(
        "street-address-suffix",
        "STREET_ADDRESS",
        # German, Swiss, Austrian, Dutch: the type is a suffix, the number follows
        # (Hauptstraße 12, Berliner Str. 5a, Prinsengracht 263, Kalverstraat 92).
        rf"[A-Z{_UP}][a-z{_LOW}]{{1,30}}"
        r"(?:stra(?:\xdfe|sse|at)|str\.|weg|allee|platz|gasse|gracht|laan"
        r"| (?:Stra(?:\xdfe|sse)|Str\.|Weg|Allee|Platz|Gasse))"
        r" {1,2}\d{1,4}[a-zA-Z]?(?![\w.])",
        triggers=("stra", "str.", "weg", "allee", "platz", "gasse", "gracht", "laan"),
        confidence=0.7,
        needs=_DIGITS,
    ),
    Rule(
        "street-address-number-first",
        "STREET_ADDRESS",
        # French: the number leads (12 rue de la Paix, 5 avenue Victor Hugo).
        r"\d{1,4}(?: ?(?:bis|ter))?,? {1,2}(?:rue|avenue|boulevard|chemin|impasse|quai)"
        r" {1,2}(?:(?:de la|de l'|des|du|de|d') ?)?" + _NAME_WORDS,
        triggers=("rue ", "avenue ", "boulevard ", "chemin ", "impasse ", "quai "),
        confidence=0.7,
        needs=_DIGITS,
    ),
    Rule(
        "street-address-type-first",
        "STREET_ADDRESS",
        # Spanish, Italian, Portuguese: type, name, number (Calle Mayor 10, Via Garibaldi 7,
        # C/ Señores Curas 88).
        r"(?:Calle|C/|Avenida|Paseo|Via|Viale|Corso|Piazza|Rua)"
        r" {1,2}(?:(?:de la|de|del|dei|della|delle|di|da|do|dos) )?"
        + _NAME_WORDS
        + r",? {1,2}(?:n[o\xba\xb0]\.? ?)?\d{1,4}[a-zA-Z]?(?![\w.])",
        triggers=(
            "calle ",
            "c/",
            "avenida ",
            "paseo ",
            "via ",
            "viale ",
            "corso ",
            "piazza ",
            "rua ",
        ),
        confidence=0.7,
        needs=_DIGITS,
    ),
)
