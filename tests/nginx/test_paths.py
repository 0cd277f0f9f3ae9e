"""What the policy judges is what the upstream gets (issue 12, finding 1).

nginx routes by the decoded, resolved path, the verifier judges that path, and with
`proxy_pass http://app;` the upstream gets the raw one. They can part only where decoding
or resolving changes the path, so such paths are refused: nginx answers 400
(`$authgate_unsafe_uri`, nginx/authgate/http.conf) and the verifier, for proxies without
that map, 403 (`authgate.paths.unsafe_path`). Everything else reaches the upstream as
sent, and decoded once it *is* the path that was judged.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authgate.paths import normalize_path, unsafe_path
from verifier.policy import Access, load_policy

from ..harness import POLICY_FILE, Sessions, VerifierProcess, mint
from ..rawhttp import request

CORPUS = Path(__file__).resolve().parent.parent / "corpus" / "paths.txt"
ATTACKS = [line for line in CORPUS.read_text().splitlines() if line and not line.startswith("# ")]
POLICY = load_policy(str(POLICY_FILE))


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


@pytest.mark.parametrize("path", ATTACKS)
def test_an_ambiguous_path_is_refused_by_nginx(nginx: str, path: str) -> None:
    answer = request(_port(nginx), path)
    assert answer.status == 400, (path, answer.status, answer.body[:200])


@pytest.mark.parametrize("path", ATTACKS)
def test_an_ambiguous_path_is_refused_by_the_verifier_too(
    verifier: VerifierProcess, path: str
) -> None:
    """For a proxy in front that lacks nginx's map: the verifier alone refuses them."""
    assert unsafe_path(path) is not None, path
    headers = [(b"X-Original-URI", path.encode("latin-1")), (b"X-Authgate-Policy", b"public")]
    assert request(verifier.port, b"/verify", headers).status == 403, path


def test_the_penetration_tests_requests_no_longer_reach_the_admin_handler(nginx: str) -> None:
    for path in ("/admin/../public/x", "/docs/%2e%2e/public/x"):  # curl --path-as-is
        answer = request(_port(nginx), path)
        assert answer.status == 400, path


PIECES = ["admin", "public", "docs", "api", "x", "ADMIN", "%61dmin", "Public", "..", ".",
          "%2e", "%2E%2e", ".%2e", "%2f", "%2F", "%252e", "%252f", "%5c", "\\", ";", "",
          "%00", "%c0%ae", "%e2%82%ac", "%20", "%3f", "%23", "%25", "a%2", "caf%c3%a9",
          "~", "healthz", "-"]  # fmt: skip


@st.composite
def paths(draw: st.DrawFn) -> str:
    segments = draw(st.lists(st.sampled_from(PIECES), min_size=1, max_size=5))
    path = "/" + "/".join(segments)
    if draw(st.booleans()):
        path += "/"
    if draw(st.booleans()):
        path += "?q=" + draw(st.sampled_from(["1", "%2e%2e/admin", "a/../b", "%252f"]))
    return path


@pytest.fixture(scope="module")
def viewer_token(sessions: Sessions, signing_key: object) -> str:
    sid = sessions.create("viewer-1", roles=["viewer"])
    return mint(signing_key, sid, "viewer-1")  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(path=paths(), signed_in=st.booleans())
def test_fuzz_what_reaches_the_upstream_is_what_was_judged(
    nginx: str, viewer_token: str, path: str, signed_in: bool
) -> None:
    headers = [(b"Authorization", f"Bearer {viewer_token}".encode())] if signed_in else []
    answer = request(_port(nginx), path, headers)
    unsafe = unsafe_path(path)
    if answer.status == 400:
        assert unsafe is not None, f"nginx refused {path!r}, the verifier would not"
        return
    if unsafe is not None:
        assert answer.status == 403, (path, answer.status)  # the verifier's refusal
        return
    if answer.status != 200:  # refused by policy: nothing reached the upstream
        assert answer.status in (301, 302, 401, 403), (path, answer.status)
        return
    received = answer.json()["path"]
    assert received == path, "nginx forwards the request target as sent"
    judged = normalize_path(path)
    assert unquote(received.split("?", 1)[0]) == judged, "decoded once, it is what was judged"
    rule = POLICY.select("127.0.0.1", judged, "GET")
    assert rule is not None
    if not signed_in:
        assert rule.access is Access.PUBLIC, f"anonymous reached {judged!r} ({rule.name})"
    else:
        assert rule.name != "admin", f"a viewer reached the admin rule's {judged!r}"
