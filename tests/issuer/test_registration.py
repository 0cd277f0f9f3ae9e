"""Finding 6 of issue 12: registration must not tell whether an email has an account.

OWASP Authentication Cheat Sheet, "Authentication and Error Messages": the answer to a
registration is the same whether or not the account exists; the owner of an existing
account learns of the attempt from a `user.registration_attempted` event (and a log line).
"""

from __future__ import annotations

import time

import httpx

from issuer import keyspace

from ..amqp import EventSink
from ..social import Social, browser
from .corpus import corpus, fill, fresh_email, register, sign_in

EXCHANGE = "authgate.events"  # the social fixture's issuer publishes to the default


def _answer(response: httpx.Response) -> tuple[int, str | None, str, list[str]]:
    """Everything a client sees of a registration's answer but timing."""
    cookies = sorted(c.split("=", 1)[0] for c in response.headers.get_list("set-cookie"))
    return response.status_code, response.headers.get("location"), response.text, cookies


def test_registering_an_existing_email_answers_exactly_like_a_new_one(social: Social) -> None:
    local, domain = fresh_email("owner").split("@")
    with browser() as first:
        created = register(social, first, f"{local}@{domain}", "the owner's password 1")
        # Signing in is a separate step for everyone, or the session would tell.
        assert first.get(f"{social.issuer.url}/me").status_code == 401
        assert (
            sign_in(social, first, f"{local}@{domain}", "the owner's password 1").status_code == 303
        )
    for template in corpus("registration_existing_email"):
        email = fill(
            template, local=local, domain=domain, LOCAL=local.upper(), DOMAIN=domain.upper()
        )
        with browser() as other:
            again = register(social, other, email, "an attacker's password 1")
            assert _answer(again) == _answer(created), template
            assert other.get(f"{social.issuer.url}/me").status_code == 401
    # The attacker's password did not replace the owner's.
    with browser() as owner:
        assert (
            sign_in(social, owner, f"{local}@{domain}", "the owner's password 1").status_code == 303
        )


def test_an_existing_email_costs_the_same_work(social: Social) -> None:
    """Both paths hash the password (argon2id dominates); neither is a cheap early exit."""
    existing = fresh_email("timing")
    with browser() as http:
        assert register(social, http, existing, "a timing password 1").status_code == 303

    def took(email: str) -> float:
        with browser() as http:
            started = time.perf_counter()
            register(social, http, email, "another timing pass 2")
            return time.perf_counter() - started

    new = min(took(fresh_email("timing")) for _ in range(3))
    old = min(took(existing) for _ in range(3))
    assert 0.5 < old / new < 2, (old, new)


def test_the_owner_is_told_of_the_attempt(social: Social, amqp_url: str) -> None:
    sink = EventSink(amqp_url, EXCHANGE, "user.registration_attempted")
    try:
        email = fresh_email("told")
        with browser() as http:
            assert register(social, http, email, "the owner's password 2").status_code == 303
        uid = social.redis.get(keyspace.local(email))
        assert uid
        with browser() as http:
            register(social, http, email.upper(), "an attacker's secret 9")
        received = sink.wait_for(lambda r: any(e.event["subject"] == uid for e in r))
        mine = [e for e in received if e.event["subject"] == uid]
        assert [e.routing_key for e in mine] == ["user.registration_attempted"]
        assert mine[0].event["data"] == {"user_id": uid, "email": email}
        assert "attacker's secret" not in mine[0].body.decode()
    finally:
        sink.close()
    log = social.issuer.log()
    assert f"registration attempt for an existing account: user {uid}" in log
    assert "attacker's secret" not in log and "owner's password" not in log
