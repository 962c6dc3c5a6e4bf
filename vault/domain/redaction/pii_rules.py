"""Personal-data detectors: e-mail, phone, government ids, cards, IBANs, IPs, dates of birth,
passports, street addresses.

Numbers are the hard part: most numbers in telemetry are not personal. Each numeric rule
therefore has a validator (Luhn, mod-97, SSA ranges, address validity, ICAO check digits, street
evidence) or needs a context word near the candidate; docs/redaction.md gives the reasoning rule
by rule. Street rules match a street line and the address block after it (unit, city, postal
code), built from the bounded pieces below.
"""

from __future__ import annotations

import re

from vault.domain.redaction.checks import (
    LOWER_STREET_WORDS,
    card_ok,
    iban_ok,
    icao_check_ok,
    ip_ok,
    itin_ok,
    phone_ok,
    ssn_ok,
    street_evidence,
    street_typed,
)
from vault.domain.redaction.engine import Rule, Validator, has_context

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
# --- street addresses (docs/redaction.md, "Street addresses (v5)") ----------------------------
# Letters of names in the Latin (Latin-1, Extended-A/B), Greek and Cyrillic scripts, as explicit
# ranges: ``re.ASCII`` (set by the engine) limits ``\w`` to ASCII. Extended-A/B mix both cases.
_UPPER = "A-Z\xc0-\xd6\xd8-\xde\u0100-\u024f\u0386\u0388-\u03ab\u0400-\u042f"
_LETTER = "A-Za-z\xc0-\xd6\xd8-\xf6\xf8-\u024f\u0386-\u03ce\u0400-\u045f"
_NOT_BEFORE = f"{_LETTER}0-9_'.-"
# A capitalised word (with an elided d'/l', dots and dashes inside: ``St.``, ``Grand-Leez``).
_WORD = f"(?:[dlDL]')?[{_UPPER}][{_LETTER}'.-]{{0,30}}"
# Lower-case particles inside street and place names (always followed by another word).
_PARTICLE_WORD = (
    "(?:de|del|della|delle|dei|degli|di|da|do|dos|das|du|des|la|le|les|el|los|las|van|von"
    "|der|den|am|an|im|bei|nad|pod|na|u|y|e|i|en|sur|upon|on)"
)
_PARTICLE = f"(?:{_PARTICLE_WORD} )"
# A lower-case word: inside a street name only before a lower-case street type (Árpád
# fejedelem útja, rue des lieutenants Thomazo), or in an all-lower-case address.
_LOWER_WORD = f"[a-z\xdf-\xf6\xf8-\u024f\u03ac-\u03ce\u0430-\u045f][{_LETTER}'.-]{{0,30}}"
# Unit designators, which end a street name ("Heatherleigh Suite 620": the unit follows).
_UNIT_WORDS = (
    "(?i:apt|apartment|suite|ste|unit|flat|floor|fl|room|rm|bldg|building|lgh|piano|interno|scala)"
)
# Street types written in lower case inside a name (Király u. 15, Luite tee 87, Trenerys gate).
_LOWER_TYPE = (
    "(?:"
    + "|".join(sorted((re.escape(w) for w in LOWER_STREET_WORDS), key=lambda w: (-len(w), w)))
    + f")\\.?(?![{_LETTER}0-9_'-])"
)
# A place or street name of capitalised words, with particles (Soto del Barco, Rue de la Paix).
_CAP_NAME = f"{_WORD}(?: {{1,2}}{_PARTICLE}{{0,2}}{_WORD}){{0,4}}"
# A street name: a capitalised word, then up to 5 capitalised words, particles or lower-case
# street types (one lower-case word may precede a type); not a unit, and not past a word of 4+
# lower-case letters and a dot (a sentence's end: "5 Main Street. Tomorrow I...").
_NAME_MORE = (
    f"(?:(?<![a-z\\xdf-\\xff]{{4}}\\.) {{1,2}}(?!{_UNIT_WORDS}\\b)"
    f"(?:{_WORD}|{_PARTICLE_WORD}(?= )|(?:{_LOWER_WORD} {{1,2}})?{_LOWER_TYPE})){{0,5}}"
)
_NAME = _WORD + _NAME_MORE
# An all-lower-case street name after a building number: a type and up to 3 words ("rue du
# centre"), or 1-2 words ("tawastintie", "hegyalja út"); the validator then asks for a type.
_LOWER_NAME = (
    f"(?:{_LOWER_TYPE}(?: {{1,2}}{_LOWER_WORD}){{0,3}}|(?:{_LOWER_WORD} {{1,2}})?{_LOWER_WORD})"
)
# The older (v4) street-name words: ASCII and Latin-1 letters only.
_UP = "\xc0-\xd6\xd8-\xde"
_LOW = "\xdf-\xf6\xf8-\xff"
_NAME_WORD = f"[A-Z{_UP}][A-Za-z{_UP}{_LOW}'.-]{{1,25}}"
_NAME_WORDS = f"{_NAME_WORD}(?: {_NAME_WORD}){{0,3}}"
_STREET_SUFFIX = (
    r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Place|Pl|Way"
    r"|Terrace|Ter|Circle|Cir|Highway|Hwy|Parkway|Pkwy|Square|Sq|Trail|Trl|Crescent|Cres"
    r"|Alley|Loop|Plaza|Row|Walk|Close|Pike|Ridge|Path|Heights|Hts|Crossing|Parade|Esplanade"
    r"|Promenade|Grove|Gardens|Mews|Quay|Wharf)"
)
# The other USPS street suffixes (Publication 28, appendix C1), plural forms included.
_USPS_SUFFIX = (
    "(?:Alleys?|Anex|Arcade|Bayou|Beach|Bend|Bluffs?|Bottom|Branch|Bridge|Brooks?|Burgs?"
    "|Bypass|Camp|Canyon|Cape|Causeway|Centers?|Centre|Circles|Cliffs?|Club|Commons?|Corners?"
    "|Course|Courts|Coves?|Creek|Crest|Crossroads?|Curve|Dale|Dam|Divide|Drives|Estates?"
    "|Expressway|Extensions?|Falls?|Ferry|Fields?|Flats?|Fords?|Forests?|Forges?|Forks?|Fort"
    "|Freeway|Gateway|Glens?|Greens?|Groves|Harbors?|Haven|Hills?|Hollow|Inlet|Islands?|Isle"
    "|Junctions?|Keys?|Knolls?|Lakes?|Landing|Lights?|Loaf|Locks?|Lodge|Mall|Manors?|Meadows?"
    "|Mills?|Mission|Motorway|Mount|Mountains?|Neck|Orchard|Oval|Overpass|Parks?|Parkways"
    "|Pass|Passage|Pines?|Plains?|Points?|Ports?|Prairie|Radial|Ramp|Ranch|Rapids?|Rest"
    "|Ridges|River|Roads|Route|Rue|Run|Shoals?|Shores?|Skyway|Springs?|Spurs?|Squares|Station"
    "|Stravenue|Stream|Streets|Summit|Throughway|Trace|Track|Trafficway|Tunnel|Turnpike"
    "|Underpass|Unions?|Valleys?|Viaduct|Views?|Villages?|Ville|Vista|Walks|Wall|Ways|Wells?)"
)


def _by_first_letter(words: str) -> str:
    """``(?:A|B|...)`` regrouped by first letter, so that ``re`` tries ~20 branches, not 200."""
    groups: dict[str, list[str]] = {}
    for word in re.findall(r"[A-Za-z]+\??", words):
        groups.setdefault(word[0], []).append(word[1:])
    return (
        "(?:"
        + "|".join(
            f"{first}(?:{'|'.join(sorted(rests, key=lambda r: (-len(r), r)))})"
            for first, rests in sorted(groups.items())
        )
        + ")"
    )


# Every English suffix: the classic ones, then the other USPS ones, by first letter.
_ANY_SUFFIX = _by_first_letter(_STREET_SUFFIX + _USPS_SUFFIX)
# A house number: 12, 12a, 12/3, 12-14, Hungarian "12." (the dot is kept with it).
_HOUSE = r"\d{1,5}[A-Za-z]?(?:[/-]\d{1,4}[A-Za-z]?)?(?![\w/-])\.?"
# Abbreviated street types written before the name in lower case (ul. Cicha, al. Róż, C/ Mayor).
_PREFIX = r"(?:(?:ul|al|pl|os|av|avda|str|trg)\.|[Cc]/)"
# A unit: Apt. 329, Suite 442, Unit 5, Flat 2B, # 12.
_UNIT = (
    f"(?:{_UNIT_WORDS}|#)"
    r"\.? {0,2}(?i:no\.? {0,2})?#?[A-Za-z]?\d{1,5}[A-Za-z]?(?![\w-])"
)
# Postal codes: 91321, 53-320, 340 12, D-10115, 1011 AB, B0J 2H0 (Canada), SW1A 1AA (UK).
_POSTAL = (
    r"(?:(?:[A-Z]{1,2}-)?\d{3,6}(?:[ -]\d{2,4}| [A-Z]{2})?"
    r"|[A-Z]\d[A-Z] ?\d[A-Z]\d|[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2})(?![\w-])"
)
# A city, region or country, possibly with a postal code: "Grand Rapids", "Cyprus (Greek) 13429".
# ("I'll" after an address is not a place.)
_PLACE_WORD = f"(?!I')(?:[dlDL]')?[{_UPPER}][{_LETTER}'.-]{{0,30}}"
_PLACE = (
    f"\\(?{_PLACE_WORD}\\)?(?: {{1,2}}{_PARTICLE}{{0,2}}\\(?{_PLACE_WORD}\\)?){{0,4}}"
    f"(?:,? {{1,2}}{_POSTAL})?"
)
# What may follow a street line within its address block, separated by a comma, one or two line
# breaks (with indentation or quote marks), or spaces (not after a sentence's end): a unit, a
# postal code, "nan" (a missing value printed by the data generators), a place. At most six.
_SEGMENT = f"(?:{_UNIT}|{_POSTAL}|nan|{_PLACE})(?![{_LETTER}0-9_:@(])"
_SEP = (
    r"(?: {0,2}, {0,3}| {0,4}(?:\r?\n[ \t>?*]{0,8}){1,2}(?:, {0,2})?|(?<![.!?]) {1,3}"
    f"|(?<=\\d\\.) {{1,3}}(?={_UNIT_WORDS}))"
)
_TAIL = f"(?:{_SEP}{_SEGMENT}){{0,6}}"
# A building number before the street (Faker's and many forms' "<building> <street>").
_LEAD = r"\d(?<![\w.,/:#+-]\d)\d{0,5}[A-Za-z]?,? {1,3}"
# Street line, name first: "Via Roma 131", "Laukaantie 80", "ul. Cicha 86", "Király u. 15.".
_NAME_HOUSE = f"{_NAME},? {{1,2}}(?:n[o\\xba\\xb0]\\.? ?)?{_HOUSE}"
# The same after a building number: "975 Via Roma 131", "17151 2450 Crown" (house first).
_STREET_LINE = f"(?:{_PREFIX} {{0,2}})?(?:{_NAME}|{_LOWER_NAME})"
_HOUSE_AFTER = f",? {{1,2}}(?:n[o\\xba\\xb0]\\.? ?)?{_HOUSE}"
# (Two numbers at least: the building number and a house number before or after the name.)
_BUILDING_FIRST = (
    f"{_LEAD}(?:\\d{{1,5}}[A-Za-z]?(?:[/-]\\d{{1,4}}[A-Za-z]?)? {{1,3}}{_STREET_LINE}"
    f"(?:{_HOUSE_AFTER})?|{_STREET_LINE}{_HOUSE_AFTER})"
)
# The name-first line once its first (capital) letter is consumed.
_NAME_HOUSE_REST = f"[{_LETTER}'.-]{{0,30}}{_NAME_MORE},? {{1,2}}(?:n[o\\xba\\xb0]\\.? ?)?{_HOUSE}"
_CORE_BUILDING_FIRST = re.compile(_BUILDING_FIRST, re.ASCII)
_CORE_ENGLISH = re.compile(
    r"\d{1,6}[A-Za-z]?(?: {1,3}\d{1,6}[A-Za-z]?)?(?: {1,3}(?:[NSEW]\.?|North|South|East|West))?"
    rf"(?: {{1,3}}(?:{_WORD}|\d{{1,3}}(?:st|nd|rd|th))){{1,4}}"
    rf" {{1,3}}(?P<suffix>{_ANY_SUFFIX})\b\.?",
    re.ASCII,
)
_CLASSIC_SUFFIX = re.compile(_STREET_SUFFIX + r"\Z")
_CORE_NAME_HOUSE = re.compile(_NAME_HOUSE, re.ASCII)
_NUMBER = re.compile(r"(?<![\w])\d{1,6}")
# One gate for the four street-line rules (searched once per text, stopping at the first hit):
# a digit followed by a letter, a space or a comma (a building or house number before a name),
# or preceded by a space, "º", "°", "." or "o" (a house number after a name, "nº 5").
_STREET_GATE = r"\d(?:(?<=[ \xba\xb0.o]\d)|(?=[A-Za-z ,]))"


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


def street_ok(core: re.Pattern[str], *, minimum: int = 2) -> Validator:
    """A street-address candidate with enough evidence (``checks.street_evidence`` >=
    ``minimum``); ``core`` matches its street line (the rest is the block after it)."""

    def check(text: str, start: int, end: int) -> bool:
        match = core.match(text, start, end)
        core_end = match.end() if match else end
        numbers = len(_NUMBER.findall(text, start, core_end))
        if numbers == 0:
            return False
        first = next((c for c in text[start:core_end] if c.isalpha()), "")
        if first.islower() and not street_typed(text[start:core_end]):
            return False  # a lower-case name needs its street type ("5 pm on Monday 3")
        return street_evidence(text, start, core_end, end, numbers) >= minimum

    return check


def _english_street_ok(text: str, start: int, end: int) -> bool:
    """A classic suffix (Street, Avenue, Road...) is enough; another USPS suffix asks for one
    more sign (``street_evidence`` >= 1)."""
    match = _CORE_ENGLISH.match(text, start, end)
    if match is None or _CLASSIC_SUFFIX.match(match.group("suffix")):
        return True
    numbers = len(_NUMBER.findall(text, start, match.end()))
    return street_evidence(text, start, match.end(), end, numbers) >= 1


def corner_ok(text: str, start: int, end: int) -> bool:
    """In "corner of X and Y", X holds a number or a street type (not "my eye and I")."""
    value = text[start:end]
    at = value.lower().index("corner of") + len("corner of ")
    first = _CORNER_AND.split(value[at:], maxsplit=1)[0]
    return any(c.isdigit() for c in first) or street_typed(first)


_CORNER_AND = re.compile(r" (?:and|&) ", re.IGNORECASE)


def _de_passport_ok(text: str, start: int, end: int) -> bool:
    """The ICAO check digit holds, and no revision word is near (a 9-character Git hash)."""
    return icao_check_ok(text, start, end) and not has_context(
        text, start, end, ("commit", "sha", "hash", "revision", "build", "version"), 20
    )


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


# Words for "passport" (English, Spanish, German, French, Italian, Portuguese, Turkish,
# Polish, Dutch, Russian, Korean, Chinese, Japanese); the triggers are their lower-case cores.
_PASSPORT_WORDS = (
    r"(?:passport|pasaport[e]?|reisepass|passeport|passaport[eo]|paszport|paspoort|pass-nr"
    "|travel document|\u043f\u0430\u0441\u043f\u043e\u0440\u0442|\uc5ec\uad8c"
    "|\u8b77\u7167|\u62a4\u7167|\u30d1\u30b9\u30dd\u30fc\u30c8)"
)
_PASSPORT_TRIGGERS = (
    "passport",
    "pasaport",
    "reisepass",
    "passeport",
    "passaport",
    "paszport",
    "paspoort",
    "pass-nr",
    "travel document",
    "\u043f\u0430\u0441\u043f\u043e\u0440\u0442",
    "\uc5ec\uad8c",
    "\u8b77\u7167",
    "\u62a4\u7167",
    "\u30d1\u30b9\u30dd\u30fc\u30c8",
)

# One gate for the two bare passport shapes (one search per text): a German number's last
# digit after 8 characters of its alphabet, or a Korean number's 3 digits, letter, 4 digits.
_BARE_PASSPORT_GATE = (
    r"\d(?:(?<=[CFGHJ-NPRTV-Zcfghj-nprtv-z][0-9CFGHJ-NPRTV-Zcfghj-nprtv-z]{7}\d)"
    r"|(?<=\d{3}[A-Za-z]\d)\d{3})"
)

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
        # Every match begins where the run of local-part characters before its "@" begins.
        run_before=("@", r"A-Za-z0-9._%+\-"),
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
        _PASSPORT_WORDS
        + r"[^\n]{0,30}?(?<![A-Za-z0-9])(?P<value>(?=[A-Za-z]{0,8}\d)[A-Za-z0-9]{6,12})"
        r"(?![A-Za-z0-9])",
        triggers=_PASSPORT_TRIGGERS,
        validate=_passport_ok,
        ignore_case=True,
        confidence=0.8,
        needs=_DIGITS,
    ),
    Rule(
        "passport-number-before",
        "PASSPORT",
        # The number first, the word after it ("AAA123456 es mi número de pasaporte").
        r"(?<![A-Za-z0-9])(?P<value>(?=[A-Za-z]{0,8}\d)[A-Za-z0-9]{6,12})(?![A-Za-z0-9])"
        r"[^\n.;]{0,30}?" + _PASSPORT_WORDS,
        triggers=_PASSPORT_TRIGGERS,
        validate=_passport_ok,
        ignore_case=True,
        confidence=0.8,
        needs=_DIGITS,
    ),
    Rule(
        "kr-passport",
        "PASSPORT",
        # Korean passports since 2021 (MOFA): type letter (M, S, R, O, D), 3 digits, a letter,
        # 4 digits: "M123A4567". The shape is specific enough to stand without a word.
        r"[MSRODmsrod](?<![A-Za-z0-9][MSRODmsrod])\d{3}[A-Za-z]\d{4}(?![A-Za-z0-9])",
        gate=_BARE_PASSPORT_GATE,
        confidence=0.75,
        needs=_DIGITS,
    ),
    Rule(
        "de-passport",
        "PASSPORT",
        # German passports (ICAO 9303 machine-readable number): 9 characters of the alphabet
        # without vowels and look-alikes (C F G H J K L M N P R T V W X Y Z, digits), a letter
        # first, the ICAO 7-3-1 check digit last ("C01X00T47" fails it, so stays).
        r"[CFGHJ-NPRTV-Zcfghj-nprtv-z](?<![A-Za-z0-9][CFGHJ-NPRTV-Zcfghj-nprtv-z])"
        r"[0-9CFGHJ-NPRTV-Zcfghj-nprtv-z]{7}\d(?![A-Za-z0-9])",
        gate=_BARE_PASSPORT_GATE,
        validate=_de_passport_ok,
        confidence=0.7,
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
        # Looser than the pattern ([A-Za-z0-9], not [A-Za-z9]) so that every digit counts
        # alike: the gate is then searched as a literal-led one (shape.zero_led).
        gate=r"\d{6}[A-Za-z0-9]{2}\d[A-Za-z]{2}",
        validate=_uk_licence_ok,
        confidence=0.85,
        needs=_DIGITS,
    ),
    Rule(
        "us-street-address",
        "STREET_ADDRESS",
        # Number first, suffix last (English): "1600 Pennsylvania Avenue"; since v5 also after a
        # building number ("975 3968 Bay Street"), with its block ("Apt. 4, Toronto, ON"), and
        # with the other USPS suffixes (Bypass, Center, Flats, Shore, View...), which ask for
        # one more sign ("Top 10 Data Center" is a title): see ``_english_street_ok``.
        r"\d(?<![\w-]\d)\d{0,5}[A-Za-z]?(?: {1,3}\d{1,6}[A-Za-z]?)?"
        r"(?: {1,3}(?:[NSEW]\.?|North|South|East|West))?"
        rf"(?: {{1,3}}(?:{_WORD}|\d{{1,3}}(?:st|nd|rd|th))){{1,4}}"
        rf" {{1,3}}{_ANY_SUFFIX}\b\.?" + _TAIL,
        # A number, then a capital, a digit, d'/l' or a non-ASCII letter (not "5 items").
        gate=r"\d[A-Za-z]? {1,3}[^\sa-ce-km-z]",
        validate=_english_street_ok,
        confidence=0.7,
        needs=_DIGITS,
    ),
    Rule(
        "street-address-number-first",
        "STREET_ADDRESS",
        # French: the number leads (12 rue de la Paix, 5 Avenue Victor Hugo, 975 63 Rue de
        # Kairouan), then the block.
        r"\d(?<![\w-]\d)\d{0,5}(?: {1,3}\d{1,4})?(?: ?(?:bis|ter))?,? {1,2}"
        r"(?i:rue|avenue|av\.?|boulevard|bd|chemin|impasse|quai|all[e\xe9]e|place|route|cours)"
        r" {1,2}(?:(?i:de la|de l'|des|du|de|d') ?)?" + _NAME_WORDS + _TAIL,
        gate=_STREET_GATE,
        confidence=0.7,
        needs=_DIGITS,
    ),
    Rule(
        "street-address-name-number",
        "STREET_ADDRESS",
        # Name first, then the house number, in every European order: a street-type word
        # (Via Roma 131, Laukaantie 80, Ringvej 144, Trenerys gate 232, Király u. 15.), or
        # without one with other evidence (a unit, a postal block, an address word): see
        # ``street_evidence``. The first letter is consumed before the look-behind runs.
        f"[{_UPPER}](?<![{_NOT_BEFORE}][{_UPPER}])" + _NAME_HOUSE_REST + _TAIL,
        gate=_STREET_GATE,
        validate=street_ok(_CORE_NAME_HOUSE),
        confidence=0.7,
        needs=_DIGITS,
    ),
    Rule(
        "street-address-building-first",
        "STREET_ADDRESS",
        # A building number, then the street line in any order ("31195 Piazza Rezzonico 35",
        # "3178 254 Damvergi Street", "3037 ul. Północna 73", "9816 214 Pavlou Drandaki"),
        # then the block. Validated like the rule above; the building number counts as one
        # piece of evidence.
        _BUILDING_FIRST + _TAIL,
        gate=_STREET_GATE,
        validate=street_ok(_CORE_BUILDING_FIRST),
        confidence=0.7,
        needs=_DIGITS,
    ),
    Rule(
        "military-address",
        "STREET_ADDRESS",
        # US military post (APO/FPO/DPO with AA/AE/AP and a ZIP): "PSC 1234, Box 5678",
        # "Unit 1009 Box 0219" or a ship ("USS Mahler"), then the post line.
        r"(?<![\w])(?:(?:PSC|CMR|Unit) {1,2}\d{1,5},? {1,2}Box {1,2}\d{1,5}"
        rf"|US(?:S|NS|NV|CGC) {{1,2}}[{_LETTER}'.-]{{1,30}}(?: [{_LETTER}'.-]{{1,30}}){{0,2}})"
        r" {0,3}(?:,|\r?\n[ \t>]{0,8}) {0,3}[ADF]PO A[AEP] \d{5}(?!\d)",
        # The post line, found from its ZIP's first digit (one scan, no letter trigger).
        gate=r"\d(?<=[ADFadf][Pp][Oo] [Aa][AEPaep] \d)",
        ignore_case=True,
        confidence=0.8,
        needs=_DIGITS,
    ),
    Rule(
        "po-box",
        "STREET_ADDRESS",
        # Post-office boxes: P.O. Box 104, PO Box 7, Postfach 12 34, Apartado 55, Caixa
        # Postal 3, Casella Postale 9, Boîte postale 6, Postboks 12, Skrytka pocztowa 4; after a
        # building number too, then the block.
        r"(?:\d(?<![\w.,/:#+-]\d)\d{0,5},? {1,3})?"
        r"(?<![\w])(?i:p\.? ?o\.? ?box|post(?:al)? office box|post ?box|postfach|postboks"
        r"|apartado(?: de correos)?|caixa postal|casella postale|bo[i\xee]te postale"
        r"|skrytka pocztowa)(?:\. ?| {1,2})(?i:no\.? {0,2}|#)?\d{1,6}(?: \d{2,4})?(?![\w-])"
        + _TAIL,
        triggers=("box", "postfach", "postboks", "apartado", "postal", "skrytka"),
        confidence=0.75,
        needs=_DIGITS,
    ),
    Rule(
        "street-corner",
        "STREET_ADDRESS",
        # "the corner of Main Street and 5th Avenue", "corner of ul. Cicha 86 and Lipowa":
        # two street names joined by "and"; validated: the first holds a number or a street
        # type, the second is capitalised.
        r"(?i:the )?(?i:corner) (?i:of) [^\n,;:?!()]{2,60}? (?i:and|&) " + _CAP_NAME,
        triggers=("corner of",),
        validate=corner_ok,
        confidence=0.7,
    ),
)
