"""integration §1 signature rules, checked against Stripe's independent signer."""
from __future__ import annotations

import pytest

from chalicelib.errors import InvalidSignature, StaleSignature
from chalicelib.webhooks import signature
from tests.support import sign

BODY = b'{"id":"evt_1","type":"account.topped_up"}'


def test_matches_an_independent_signer():
    header = sign(BODY, "s3cret", 1_800_000_000)
    signature.verify(header, BODY, ("other", "s3cret"), 1_800_000_000)
    assert header == f"t=1800000000,v1={signature.sign('s3cret', 1_800_000_000, BODY)}"


@pytest.mark.parametrize("now, ok", [(1_800_000_300, True), (1_799_999_700, True), (1_800_000_301, False), (1_799_999_699, False)])
def test_300_second_window_both_ways(now, ok):
    header = sign(BODY, "s", 1_800_000_000)
    if ok:
        signature.verify(header, BODY, ("s",), now)
    else:
        with pytest.raises(StaleSignature):
            signature.verify(header, BODY, ("s",), now)


def test_bad_signature_is_reported_before_staleness():
    with pytest.raises(InvalidSignature):
        signature.verify(sign(BODY, "wrong", 1), BODY, ("s",), 1_800_000_000)


def test_a_changed_byte_fails():
    header = sign(BODY, "s", 1_800_000_000)
    with pytest.raises(InvalidSignature):
        signature.verify(header, BODY.replace(b"evt_1", b"evt_2"), ("s",), 1_800_000_000)


def test_no_secrets_configured_accepts_nothing():
    with pytest.raises(InvalidSignature):
        signature.verify(sign(BODY, "s", 1_800_000_000), BODY, (), 1_800_000_000)


@pytest.mark.parametrize("t_value", ["01800000000", "+1800000000", "1_800_000_000", " 1800000000", "0x6b49d200",
                                     "١٨٠٠٠٠٠٠٠٠", "1800000000.0", ""])
def test_t_must_be_plain_digits(t_value):
    """integration §1, §6: `t` is a unix time in plain digits; int() alone accepts +, _ and other scripts'
    digits, so one signature could be spelled several ways."""
    # signed over the canonical time, so only the parsing of `t` can refuse it
    with pytest.raises(InvalidSignature):
        signature.verify(f"t={t_value},v1={signature.sign('s', 1_800_000_000, BODY)}", BODY, ("s",), 1_800_000_000)
    signature.verify(f"t=1800000000,v1={signature.sign('s', 1_800_000_000, BODY)}", BODY, ("s",), 1_800_000_000)


# integration §1 / §Answers: a 401 names what is wrong with the header, so the messages are part of the contract.
GOOD = signature.sign("s", 1_800_000_000, BODY)


@pytest.mark.parametrize("header, message", [
    (None, "X-Signature header is missing"),
    ("", "X-Signature header is missing"),
    (f"t=1800000000,v1{GOOD}", "X-Signature header is malformed"),
    ("t=1800000000,", "X-Signature header is malformed"),
    ("t=018,v1=ab", "X-Signature t is not a unix time (plain digits)"),
    # the first "=" splits key from value: `t=1=…` is a t that is not digits, not an unknown key "t=1"
    ("t=1=1800000000,v1=ab", "X-Signature t is not a unix time (plain digits)"),
    ("t=1800000000", "X-Signature header needs t= and at least one v1="),
    (f"v1={GOOD}", "X-Signature header needs t= and at least one v1="),
    (f"t=1800000000,v0={GOOD}", "X-Signature header needs t= and at least one v1="),
    # a v1 whose value holds "=" is still a v1 entry (that does not match), not an unknown key "v1=…"
    (f"t=1800000000,v1={GOOD}=", "no v1 signature matches"),
    (f"t=1800000000,v1={signature.sign('wrong', 1_800_000_000, BODY)}", "no v1 signature matches"),
])
def test_invalid_signature_messages(header, message):
    """integration §1: each refusal is invalid_signature (401) with its exact message."""
    with pytest.raises(InvalidSignature) as caught:
        signature.verify(header, BODY, ("s",), 1_800_000_000)
    assert type(caught.value) is InvalidSignature
    assert caught.value.message == message == str(caught.value)


def test_stale_signature_message():
    """integration §1: a matching v1 more than 300 s off is stale_signature with its exact message."""
    with pytest.raises(StaleSignature) as caught:
        signature.verify(f"t=1800000000,v1={GOOD}", BODY, ("s",), 1_800_000_301)
    assert caught.value.message == "signature time is more than 300 s from the server's clock"


@pytest.mark.parametrize("secrets", [("s", "old"), ("old", "s"), ("a", "s", "b")])
def test_any_configured_secret_matches_wherever_it_is_listed(secrets):
    """integration §1 (rotation): every listed secret is accepted, not only the last one tried."""
    signature.verify(f"t=1800000000,v1={GOOD}", BODY, secrets, 1_800_000_000)


@pytest.mark.parametrize("entries", [[GOOD, "00" * 32], ["00" * 32, GOOD, "ff" * 32], [GOOD.upper(), "ab"]])
def test_one_valid_v1_among_several_is_enough(entries):
    """integration §1: several v1= entries may be sent; one valid entry is enough, wherever it stands."""
    header = ",".join(["t=1800000000"] + [f"v1={entry}" for entry in entries])
    signature.verify(header, BODY, ("s", "old"), 1_800_000_000)


# integration §7: a v1 that is not 64 hexadecimal characters is 401 invalid_signature, never a fault
# (hmac.compare_digest raises TypeError on non-ASCII text, which was a 500).
@pytest.mark.parametrize("v1", ["é", "", " ", GOOD[:63], GOOD + "0", GOOD[:63] + "g", GOOD[:63] + "é",
                                "٣" * 64, "ａ" * 64, "\x00" * 64, GOOD[:62] + "\u212a\u212a", "0x" + GOOD[:62]])
def test_a_v1_that_is_not_64_hex_characters_is_invalid_signature(v1):
    with pytest.raises(InvalidSignature) as caught:
        signature.verify(f"t=1800000000,v1={v1}", BODY, ("s",), 1_800_000_000)
    assert caught.value.message == "no v1 signature matches"


@pytest.mark.parametrize("malformed", ["é", "", "zz", GOOD[:63], "٣" * 64])
def test_a_malformed_v1_beside_a_valid_one_is_ignored(malformed):
    """integration §1: one valid entry is enough, so a malformed entry beside it is dropped (it can match
    nothing), in either order; the same malformed entry alone is refused (previous test)."""
    for entries in ([malformed, GOOD], [GOOD, malformed]):
        header = ",".join(["t=1800000000"] + [f"v1={entry}" for entry in entries])
        signature.verify(header, BODY, ("s",), 1_800_000_000)
