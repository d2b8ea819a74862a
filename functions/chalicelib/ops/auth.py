"""Who is calling the operators' API (integration §6 "Operators are named"): a bearer token names its
operator, or, where the routes use IAM authorization, the caller's ARN does."""
from __future__ import annotations

import hmac
from typing import Iterable, Mapping

from ..errors import Unauthorized

PLAIN_ACTOR = "operator"  # the actor of a token configured without a name


def named_tokens(entries: Iterable[str]) -> list[tuple[str, str]]:
    """`token` or `name:token` entries → (actor, token) pairs; an entry with no token after the colon
    (or an empty name before it) authorizes nobody rather than something unexpected."""
    pairs = []
    for entry in entries:
        name, colon, token = entry.partition(":")
        if not colon:
            name, token = PLAIN_ACTOR, entry
        name, token = name.strip(), token.strip()
        if name and token:
            pairs.append((name, token))
    return pairs


def actor_for_bearer(authorization: str | None, entries: Iterable[str]) -> str:
    """The actor of `Authorization: Bearer <token>`. Every configured token is compared, in constant
    time, whatever matched earlier, so the answer's timing says nothing about which one was close."""
    scheme, _, given = (authorization or "").partition(" ")
    given_bytes = given.encode()  # not stripped: a token with anything added is another token
    actor = None
    for name, token in named_tokens(entries):
        if hmac.compare_digest(given_bytes, token.encode()) and actor is None:
            actor = name
    if scheme.lower() != "bearer" or not given_bytes or actor is None:
        raise Unauthorized("a valid Authorization: Bearer <token> is required")
    return actor


def actor_for_iam(context: Mapping | None) -> str:
    """Behind API Gateway's IAM authorizer the request is already authenticated; the actor is the
    signing principal's ARN."""
    arn = ((context or {}).get("identity") or {}).get("userArn")
    if not arn:
        raise Unauthorized("IAM authorization did not name the caller")
    return arn
