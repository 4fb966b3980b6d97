"""Card numbers of every brand's IIN ranges are found in their usual spellings; Luhn failures, documented test
numbers and numbers outside the ranges are not. Numbers are random (Luhn completed), never real ones."""

from __future__ import annotations

import random

import pytest

from filter.model import TextSegment
from filter.rules import Ruleset

RNG = random.Random(2024)
CARD_RULES = {"payment-card-number", "payment-card-number-19", "payment-card-number-long", "payment-card-amex",
              "payment-card-diners"}


def _span(lo: int, hi: int) -> list[str]:
    return [str(n) for n in range(lo, hi + 1)]


# brand -> (IIN prefixes, lengths)
BRANDS: dict[str, tuple[list[str], list[int]]] = {
    "visa": (["4"], [16, 19]),
    "mastercard": (_span(51, 55), [16]),
    "mastercard-2-series": (_span(2221, 2720), [16]),
    "amex": (["34", "37"], [15]),
    "discover-6011": (["6011"], [16, 19]),
    "discover-644-649": (_span(644, 649), [16, 19]),
    "discover-65": (["65"], [16, 19]),
    "unionpay": (["62"], [16, 19]),
    "jcb": (_span(3528, 3589), [16, 19]),
    "diners-300-305": (_span(300, 305), [14]),
    "diners-36": (["36"], [14]),
    "diners-38-39": (["38", "39"], [14]),
}
# plain only, with the word "card" nearby: 13-digit Visa, 17/18-digit UnionPay
PLAIN_ONLY: dict[str, tuple[list[str], list[int]]] = {"visa-13": (["4"], [13]), "unionpay-17-18": (["62"], [17, 18])}
GROUPS = {13: [13], 14: [4, 6, 4], 15: [4, 6, 5], 16: [4, 4, 4, 4], 17: [17], 18: [18], 19: [4, 4, 4, 4, 3]}


def luhn_digit(partial: str) -> str:
    total = 0
    for i, c in enumerate(reversed(partial)):
        d = int(c)
        if i % 2 == 0:  # doubled: the check digit will be appended at position 0
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def card(prefix: str, length: int) -> str:
    body = prefix + "".join(RNG.choice("0123456789") for _ in range(length - len(prefix) - 1))
    return body + luhn_digit(body)


def spell(number: str, sep: str) -> str:
    out, i = [], 0
    for n in GROUPS[len(number)]:
        out.append(number[i:i + n])
        i += n
    return sep.join(out)


def cases(brands: dict[str, tuple[list[str], list[int]]], seps: tuple[str, ...], per: int = 8) -> list[tuple[str, str]]:
    out = []
    for brand, (prefixes, lengths) in brands.items():
        for k in range(per):
            number = card(RNG.choice(prefixes), lengths[k % len(lengths)])
            for sep in seps:
                out.append((f"{brand}-{len(number)}-{sep!r}", spell(number, sep)))
    return out


def card_rules(ruleset: Ruleset, text: str) -> list[str]:
    return [f.rule_id for f in ruleset.scan([TextSegment("t", text)]) if f.rule_id in CARD_RULES]


@pytest.mark.parametrize(("name", "spelled"), cases(BRANDS, ("", " ", "-")))
def test_every_brand_range_is_found_plain_spaced_and_dashed(shipped_ruleset: Ruleset, name: str, spelled: str) -> None:
    csv = f"id,name,card_number,exp\n7,Dana Whitfield,{spelled},09/29\n"
    for text in (f"card on file: {spelled} exp 09/29", f'{{"pan": "{spelled}"}}', csv):
        assert card_rules(shipped_ruleset, text), text
    if len(spelled) != 19:  # a plain 19-digit number needs a word saying it is a card (64-bit ids and hashes)
        assert card_rules(shipped_ruleset, f"7,Dana Whitfield,{spelled},09/29")


@pytest.mark.parametrize(("name", "spelled"), cases(PLAIN_ONLY, ("",)))
def test_plain_13_17_and_18_digit_numbers_are_found_next_to_a_card_word(
        shipped_ruleset: Ruleset, name: str, spelled: str) -> None:
    assert card_rules(shipped_ruleset, f"credit card {spelled}")
    assert not card_rules(shipped_ruleset, f"build {spelled} finished")  # no card word: an id, not a card


def broken_luhn(number: str) -> str:
    return number[:-1] + str((int(number[-1]) + 1) % 10)


@pytest.mark.parametrize(("name", "spelled"), cases(BRANDS, ("", " "), per=3))
def test_a_wrong_check_digit_is_not_a_card(shipped_ruleset: Ruleset, name: str, spelled: str) -> None:
    digits, sep = spelled.replace(" ", ""), " " if " " in spelled else ""
    assert not card_rules(shipped_ruleset, f"card on file: {spell(broken_luhn(digits), sep)}")


@pytest.mark.parametrize("prefix", ["2220", "2721", "6010", "6012", "643", "3527", "3590", "306", "371"])
def test_numbers_just_outside_the_ranges_are_not_cards(shipped_ruleset: Ruleset, prefix: str) -> None:
    number = card(prefix, 16)
    assert not card_rules(shipped_ruleset, f"card on file: {spell(number, ' ')}")


@pytest.mark.parametrize("number", [
    "4242 4242 4242 4242", "4111111111111111", "5555555555554444", "2223003122003222", "5200828282828210",
    "6011111111111117", "6011000990139424", "3530111333300000", "3566002020360505", "378282246310005",
    "3056 930902 5904", "36227206271667",
])
def test_documented_test_card_numbers_stay_allowed(shipped_ruleset: Ruleset, number: str) -> None:
    assert not card_rules(shipped_ruleset, f"use the test card {number} in staging")


@pytest.mark.parametrize("text", [
    "zeta2 = 1.6449340668482264", "weights = [0.5,6011058300906833]", "total 1,6011058300906833",
    "order 40572685541550091", "hash 4611686018427387904 seed", "ts=1700000000000",
])
def test_numbers_in_code_and_data_are_not_cards(shipped_ruleset: Ruleset, text: str) -> None:
    assert not card_rules(shipped_ruleset, text)
