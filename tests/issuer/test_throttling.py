"""Finding 9 of issue 12: five wrong passwords locked any account for up to an hour, the
right password included. Now sign-in is throttled per account and per client with delays
that grow (NIST SP 800-63B §5.2.2; OWASP Authentication Cheat Sheet), the answer says how
long to wait, and a browser that signed in to the account before (a signed device cookie)
is throttled apart from everyone else, so the owner's right password still works there."""

from __future__ import annotations

import asyncio
import re
from contextlib import closing

import httpx
import pytest
from redis.crc import key_slot

from authgate import redis_client
from issuer.errors import RateLimited
from issuer.throttle import Throttle

from ..polling import poll
from ..social import Social, browser
from .corpus import corpus, fill, fresh_email, register, sign_in

DEVICE_COOKIE = "authgate_device"
WAIT = re.compile(r"try again in (\d+) seconds?")
PASSWORD = "the owner's real password"


def _owner(social: Social) -> tuple[str, httpx.Client]:
    """A new account, and the owner's browser that has signed in to it once."""
    email = fresh_email("victim")
    device = browser()
    assert register(social, device, email, PASSWORD).status_code == 303
    assert sign_in(social, device, email, PASSWORD).status_code == 303
    assert device.cookies.get(DEVICE_COOKIE)
    return email, device


def _attack(social: Social, email: str) -> list[httpx.Response]:
    answers = []
    for guess in corpus("password_guesses"):
        with browser() as attacker:  # a new address each time
            answers.append(sign_in(social, attacker, email, guess))
    return answers


def _throttled(response: httpx.Response) -> int:
    """The wait a 429 asks for, checked against its message."""
    assert response.status_code == 429, (response.status_code, response.text[:200])
    retry = int(response.headers["retry-after"])
    said = WAIT.search(response.text)
    assert said and int(said.group(1)) == retry, response.text
    return retry


def test_the_owners_device_signs_in_while_the_account_is_under_attack(social: Social) -> None:
    email, device = _owner(social)
    with closing(device):
        answers = _attack(social, email)
        assert [a.status_code for a in answers[:5]] == [401] * 5
        assert all(_throttled(a) >= 1 for a in answers[5:])
        device.headers["X-Forwarded-For"] = "10.255.0.1"  # the owner on another network
        assert sign_in(social, device, email, PASSWORD).status_code == 303


def test_a_new_client_waits_the_delay_it_is_told_then_signs_in(social: Social) -> None:
    email, device = _owner(social)
    device.close()
    _attack(social, email)
    with browser() as laptop:
        first = sign_in(social, laptop, email, PASSWORD)
        wait = _throttled(first)
        assert wait <= 10  # a delay, not an hour's lock
        answer = poll(lambda: sign_in(social, laptop, email, PASSWORD),
                      lambda a: a.status_code != 429, wait + 5, "still throttled", interval=0.2)  # fmt: skip
        assert answer.status_code == 303


def test_forged_device_cookies_get_no_pass(social: Social) -> None:
    email, device = _owner(social)
    _, own_device = _owner(social)  # the attacker's own account and genuine device cookie
    _version, account, nonce, mac = own_device.cookies[DEVICE_COOKIE].split(".")
    own_device.close()
    _attack(social, email)
    for template in [*corpus("forged_device_cookies"), "v1.{account}.{nonce}.{mac}"]:
        forged = fill(template, account=account, nonce=nonce, mac=mac)
        with browser() as attacker:
            attacker.cookies.set(DEVICE_COOKIE, forged)
            _throttled(sign_in(social, attacker, email, PASSWORD))
    with closing(device):
        assert sign_in(social, device, email, PASSWORD).status_code == 303


def test_one_client_guessing_many_accounts_is_slowed(social: Social) -> None:
    with browser() as sprayer, browser() as bystander:
        answers = [
            sign_in(social, sprayer, fresh_email("spray"), "spray guess 1") for _ in range(11)
        ]
        assert [a.status_code for a in answers[:10]] == [401] * 10
        _throttled(answers[10])
        assert sign_in(social, bystander, fresh_email("spray"), "spray guess 1").status_code == 401


def test_delays_grow_and_keys_share_a_cluster_slot(redis_url: str) -> None:
    async def main() -> None:
        client = redis_client.connect(redis_url)
        now = [1_000_000.0]
        throttle = Throttle(client, clock=lambda: now[0])
        account = throttle.account_key(fresh_email("grow"))
        bucket = throttle.account(account)
        for _ in range(5):
            await throttle.attempt(bucket)  # the free attempts
        waits = []
        for _ in range(12):
            with pytest.raises(RateLimited) as refused:
                await throttle.attempt(bucket)
            assert refused.value.retry_after is not None
            waits.append(refused.value.retry_after)
            now[0] += refused.value.retry_after
            await throttle.attempt(bucket)
        assert waits[:4] == [2, 4, 8, 16] and waits == sorted(waits) and waits[-1] == 900
        await throttle.succeeded(bucket)
        await throttle.attempt(bucket)  # the right password starts the count again
        device = throttle.device(account, "AAAAAAAAAAAAAAAAAAAAAA")
        await throttle.attempt(device)
        keys = [k async for k in client.scan_iter(f"authgate:rl:{{{account}}}:*")]
        assert len(keys) == 2 and len({key_slot(k.encode()) for k in keys}) == 1
        await client.aclose()

    asyncio.run(main())
