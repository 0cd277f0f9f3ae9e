"""The one Redis URL syntax (authgate.redis_client): what each form means, and the errors
an operator sees for a bad one, through a service's settings and its real entry point."""

from __future__ import annotations

import pytest

from authgate import redis_client
from authgate.config import ConfigError
from verifier.settings import load_settings

from ..verifier.test_settings import run_verifier

BASE = {"AUTHGATE_ISSUER": "https://i.test", "AUTHGATE_AUDIENCE": "a",
        "AUTHGATE_JWKS_URL": "https://i.test/jwks"}  # fmt: skip


def test_standalone_forms_keep_their_url() -> None:
    for url in ("redis://h:6380/2", "rediss://:pw@h/0", "unix:///run/redis.sock?db=1"):
        target = redis_client.parse(url)
        assert (target.topology, target.url) == ("standalone", url)


def test_sentinel_names_every_sentinel_the_master_the_db_and_both_passwords() -> None:
    target = redis_client.parse(
        "rediss+sentinel://app:s%40cret@s1:26380,s2,[::1]:26381/mymaster/3"
        "?sentinel_password=watch&sentinel_username=w&ssl_cert_reqs=none"
    )
    assert target.topology == "sentinel"
    assert target.nodes == (("s1", 26380), ("s2", 26379), ("::1", 26381))
    assert (target.master, target.db) == ("mymaster", 3)  # the db is not lost
    assert (target.username, target.password) == ("app", "s@cret")
    assert (target.sentinel_username, target.sentinel_password) == ("w", "watch")
    assert (target.tls, target.tls_verify) == (True, False)


def test_cluster_takes_seed_nodes_the_password_and_the_redirection_limit() -> None:
    target = redis_client.parse("redis+cluster://:pw@n1:7000,n2:7001?max_redirections=3")
    assert target.topology == "cluster"
    assert target.nodes == (("n1", 7000), ("n2", 7001))
    assert (target.password, target.max_redirections, target.tls) == ("pw", 3, False)
    assert redis_client.parse("rediss+cluster://n1").nodes == (("n1", 6379),)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("mysql://db", "must start with one of"),
        ("redis://", "has no host"),
        ("redis+sentinel://s1:26379", "names no master"),
        ("redis+sentinel://s1/m/16", "database '16' is not a number in 0..15"),
        ("redis+sentinel://s1/m/0/x", "has a path beyond"),
        ("redis+cluster://n1:7000/1", "a Cluster has only database 0"),
        ("redis+cluster://n1:7000,,n2", "empty address"),
        ("redis+cluster://n1:99999", "has no valid port"),
        ("redis+cluster://n1?max_redirections=0", "max_redirections='0'"),
        ("redis+cluster://n1?readonly=yes", "unknown parameters: readonly"),
        ("redis+sentinel://s1/m?ssl_cert_reqs=maybe", "must be required or none"),
    ],
)
def test_bad_urls_are_refused_with_the_reason(url: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason.replace("(", r"\(").replace(".", r"\.")):
        redis_client.parse(url)


def test_settings_report_a_bad_url_without_its_password() -> None:
    bad = "redis+cluster://:hunter2@n1:7000/4"
    with pytest.raises(ConfigError) as caught:
        load_settings([], {**BASE, "AUTHGATE_REDIS_URL": bad})
    (problem,) = caught.value.problems
    assert "a Cluster has only database 0" in problem
    assert "hunter2" not in problem and ":***@" in problem
    good = "redis+sentinel://:pw@s1,s2/authgate/2"
    assert load_settings([], {**BASE, "AUTHGATE_REDIS_URL": good}).redis_url == good


def test_the_entry_point_says_what_is_wrong_with_no_traceback() -> None:
    result = run_verifier(
        "--redis-url", "redis+sentinel://s1:26379", "--issuer", "i", "--audience", "a",
        "--jwks-url", "https://i.test/jwks",
    )  # fmt: skip
    assert result.returncode == 2
    assert "names no master: redis+sentinel://host:26379,…/<master>[/db]" in result.stderr
    assert "Traceback" not in result.stderr
