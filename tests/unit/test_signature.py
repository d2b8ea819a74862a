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
