"""Who is calling the operators' API (integration §6 "Operators are named"): a bearer token names its
operator, or, where the routes use IAM authorization, the caller's ARN does."""
from __future__ import annotations

import hmac
import logging
from typing import Iterable, Mapping

from ..errors import Unauthorized

log = logging.getLogger(__name__)
PLAIN_ACTOR = "operator"  # the actor of a token configured without a name


class TokenConfigurationError(ValueError):
    """OPS_API_TOKENS (or the secret's `ops`) cannot be read one way only. The local stack refuses to
    start with this message; a deployed API answers every ops call 500 (see actor_for_bearer)."""


def named_tokens(entries: Iterable[str]) -> list[tuple[str, str]]:
    """`token` or `name:token` entries → (actor, token) pairs, or TokenConfigurationError naming every
    entry that is not exactly one of those: an empty name or token, a second colon, or a token configured
    twice (its actor would be a guess)."""
    pairs, problems, seen = [], [], {}
    for position, entry in enumerate(entries, 1):
        name, colon, token = entry.partition(":")
        if not colon:
            name, token = PLAIN_ACTOR, entry
        name, token = name.strip(), token.strip()
        if not name or not token:
            problems.append(f"entry {position} has an empty {'name' if not name else 'token'} "
                            f"(entries are `token` or `name:token`)")
        elif ":" in token:
            problems.append(f"entry {position} (name {name!r}) has a token containing `:`; "
                            f"a token is `token` or `name:token`, so it cannot hold a colon")
        elif token in seen:
            problems.append(f"entry {position} repeats the token of entry {seen[token][0]} "
                            f"(names {seen[token][1]!r} and {name!r}); each token must name one operator")
        else:
            seen[token] = (position, name)
            pairs.append((name, token))
    if problems:
        # the entries themselves are secrets: the message names positions and operators, never a token
        raise TokenConfigurationError("OPS_API_TOKENS is misconfigured: " + "; ".join(problems))
    return pairs


def actor_for_bearer(authorization: str | None, entries: Iterable[str]) -> str:
    """The actor of `Authorization: Bearer <token>`. Every configured token is compared, in constant
    time, whatever matched earlier, so the answer's timing says nothing about which one was close.

    A misconfigured list authorizes nobody: TokenConfigurationError reaches the routes' fault handler,
    which answers 500 `internal_error` and logs, rather than 401, which would tell an operator holding a
    good token that the token is wrong."""
    try:
        pairs = named_tokens(entries)
    except TokenConfigurationError as exc:
        log.error("%s; every ops call answers 500 until the configuration is fixed", exc)
        raise
    scheme, _, given = (authorization or "").partition(" ")
    given_bytes = given.encode()  # not stripped: a token with anything added is another token
    actor = None
    for name, token in pairs:
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
