"""Rules v5: street-address blocks, military and PO-box addresses, street corners, national
phone shapes, Korean and German passports. Every example here is invented (not taken from the
dev data): for each rule, what it must redact and a near miss it must leave alone."""

from __future__ import annotations

import pytest

from vault.domain.redaction import DEFAULT_RULES, redact_text
from vault.domain.redaction.checks import icao_check_ok, street_typed


def _rules_firing(text: str) -> set[str]:
    return {finding.rule for finding in DEFAULT_RULES.find(text)}


# (text, a fragment that must be gone, the rule expected to find it)
ADDRESSES = [
    # number first, English suffix, with the block after it
    ("ship it to 88 Lakeview Drive, Apt 4, Boulder, CO 80302", "Boulder", "us-street-address"),
    ("deliver to 12 400 Harbour Road\n Suite 9\n Hobart\n Australia 7000", "Hobart", None),
    # the other USPS suffixes, with one more sign (an address word, a postal block)
    ("my address is 77 Rowan Bypass", "Rowan Bypass", "us-street-address"),
    ("4410 Cedar Shore\nLakeview, MN 55401", "Cedar Shore", "us-street-address"),
    # French, number first, capitalised type
    ("rendez-vous au 7 Rue des Lilas, 69003 Lyon", "Lilas", "street-address-number-first"),
    # name first: Romance prefix types, compound names, separate lower-case types
    ("mi dirección: Calle de Goya 41, 28001 Madrid", "Goya 41", "street-address-name-number"),
    ("asunto: Avenida Paulista 1578\n Apt. 12\n São Paulo", "Paulista", None),
    ("toimitus: Mannerheimintie 14, Helsinki", "Mannerheimintie 14", None),
    ("levering: Nørrebrogade 33, 2200 København", "Nørrebrogade 33", None),
    ("adress Drottninggatan 71, Stockholm", "Drottninggatan 71", None),
    ("postadresse Karl Johans gate 5, Oslo", "Johans gate 5", None),
    ("cím: Kossuth Lajos utca 9., Szeged", "Lajos utca 9", None),
    ("aadress: Kalevi tee 12, Tartu", "Kalevi tee 12", None),
    ("Lieferadresse Goethestraße 21, 80336 München", "Goethestraße 21", None),
    ("adres: ul. Lipowa 3, Kraków", "Lipowa 3", None),
    # a building number before the street line (data generators, many web forms)
    ("sent to 4410 Via Nazionale 14\n Apt. 7\n Roma\n Italy 00184", "Nazionale", None),
    ("lives at 218 Kruununhaankatu 6, Helsinki", "Kruununhaankatu", None),
    ("return to 5512 Brisbane 77\n Suite 310\n Perth", "Brisbane 77", None),
    ("moved to 33 1712 Oak Bluff, Winnipeg, MB R3T 2N2", "Oak Bluff", None),
    # US military post and PO boxes
    ("mail to PSC 4120, Box 2286\nAPO AE 09012", "Box 2286", "military-address"),
    ("USNS Comfort\nFPO AA 34055", "Comfort", "military-address"),
    ("unit 8311 box 4412\ndpo ap 96521", "8311", "military-address"),
    ("remit to P.O. Box 7731, Fresno, CA 93747", "7731", "po-box"),
    ("Postfach 10 20 30, 50667 Köln", "20 30", "po-box"),
    # street corners
    ("meet at the corner of Market Street and Fifth Avenue", "Fifth Avenue", "street-corner"),
    ("on the corner of Sadova 12 and Lesna", "Sadova 12", "street-corner"),
]


@pytest.mark.parametrize(("text", "gone", "rule"), ADDRESSES)
def test_addresses_are_redacted(text: str, gone: str, rule: str | None) -> None:
    redacted, counts = redact_text(text)
    assert gone not in redacted, redacted
    assert "STREET_ADDRESS" in counts
    if rule is not None:
        assert rule in _rules_firing(text)
    assert redact_text(redacted) == (redacted, {})


def test_the_whole_block_goes_but_the_prose_around_it_stays() -> None:
    text = "Please send it to 2201 Via Appia 18\n Apt. 5\n Lecce\n Italy 73100 by Friday."
    redacted, _ = redact_text(text)
    assert redacted == "Please send it to [STREET_ADDRESS] by Friday."


ADDRESS_NEAR_MISSES = [
    "the release of 27 June 1973 was late",  # a date: day, month, year
    "Release 2019 Windows 10, Build 1904",  # numbers around names, no address evidence
    "out of the corner of my eye and I saw it",  # a corner, no street
    "Chapter 3 Section 4, Part 12",
    "wait 5 mins at the gate 12",  # lower-case prose before a type word
    "Boarding at Gate 12 now",  # an airport gate: "Gate" alone is no street
    "sent Via 5 channels",  # a type word alone
    "Room 101, Floor 3",  # units without a street
    "Apollo 11 landed in 1969",
    "meet at 5 pm on Monday 12",
    "Platz 3 belegt",
    "check the box 12 times",  # "box" without "P.O."
    "apo aa 12345",  # a military post line alone
    "Top 10 Data Center Trends",  # a USPS suffix, no other sign
    "Navigate 2 steps back",  # an English word ending like a Norwegian type
    "Engineering 101 starts today",
]


@pytest.mark.parametrize("text", ADDRESS_NEAR_MISSES)
def test_address_near_misses_are_left_alone(text: str) -> None:
    assert redact_text(text) == (text, {})


def test_prose_after_an_address_is_kept() -> None:
    assert redact_text("I live at 5 Main Street. Tomorrow I go")[0] == (
        "I live at [STREET_ADDRESS] Tomorrow I go"
    )
    assert redact_text("2016 Elm Street, Tucson, AZ 85701 I'll be late")[0] == (
        "[STREET_ADDRESS] I'll be late"
    )


def test_street_typed() -> None:
    assert street_typed("Laukaantie")  # a compound name
    assert street_typed("Via Roma")
    assert street_typed("Király u.")
    assert not street_typed("Via")  # the type alone
    assert not street_typed("Gate")
    assert street_typed("Trenerys gate")  # Nordic "gate" in lower case, after the name
    assert not street_typed("Trenerys Gate")  # capitalised, it is an airport's
    assert not street_typed("Road")
    assert street_typed("Jovana-Schindler-Weg")  # a dash before the type
    assert street_typed("Ekvägen")  # two letters before a long type ending
    assert not street_typed("During")  # ...not before a short one


# --- national phone shapes -----------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "0 542 318 27 90",  # Turkey, mobile, 3-3-2-2 after the trunk 0
        "0312-447-19-08",  # Turkey, Ankara
        "555.210.33.71",  # Turkey, dots
        "05423182790",  # Turkey, bare national
        "09273318840",  # Philippines, mobile, bare
        "0927-331-8840",  # Philippines, 4-3-4
    ],
)
def test_national_phone_shapes(text: str) -> None:
    assert redact_text(text) == ("[PHONE]", {"PHONE": 1})


@pytest.mark.parametrize(
    "text",
    [
        "0927331884",  # 10 digits: one short of a Philippine mobile
        "092733188401",  # one too many
        "62314450981",  # 11 digits, no trunk 0
        "742 318 27 90",  # 3-3-2-2 but not a Turkish area/mobile code
        "serial 12345678901",
    ],
)
def test_national_phone_near_misses(text: str) -> None:
    assert redact_text(text) == (text, {})


# --- passports -----------------------------------------------------------------------------


def test_icao_check_digit() -> None:
    # 7-3-1 weights, letters A=10: C=12 -> 84, then 0 1 2 3 4 5 6 -> 81; 165 -> 5
    assert icao_check_ok("C01234565", 0, 9)
    assert not icao_check_ok("C01234567", 0, 9)
    assert not icao_check_ok("CFGHJKLM5", 0, 9)  # too few digits to be a number


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Reisepass C01234565", "C01234565"),  # with its word
        ("scan of T22000124 attached", "T22000124"),  # German, bare, check digit valid
        ("M492A7710 on file", "M492A7710"),  # Korean, new format
        ("여권번호 S12345678", "S12345678"),  # Korean word
        ("X7Y123456 es mi número de pasaporte", "X7Y123456"),  # the word after the number
    ],
)
def test_passports(text: str, value: str) -> None:
    redacted, counts = redact_text(text)
    assert value not in redacted
    assert counts.get("PASSPORT") == 1


@pytest.mark.parametrize(
    "text",
    [
        "T22000125",  # check digit off by one
        "K492A7710",  # Korean shape, but K is no Korean passport type
        "A12345678",  # vowel first: not the German alphabet; no word
        "M1234A567",  # the letter in the wrong place
        "MM492A7710",  # glued to another letter
        "commit c01234565 merged",  # a short hash that happens to pass the check
    ],
)
def test_passport_near_misses(text: str) -> None:
    assert redact_text(text) == (text, {})
