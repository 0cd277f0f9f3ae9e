"""What `bin/demo` prints to try, and what `bin/demo --check` tries itself: the whole path,
client → nginx → verifier (auth_request) → gateway → member service or issuer.

Each step prints the command a person would type and, with `check`, what came back;
the walk's result is the number of wrong answers.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class DemoUser:
    token: str
    sid: str
    uid: str


@dataclass
class Walk:
    base: str  # nginx
    members: str  # the member service itself, for what only it can tell
    users: dict[str, DemoUser]
    issuer_env: dict[str, str]
    check: bool
    failures: int = 0

    def step(self, label: str, command: str, expected: str, got: Callable[[], str]) -> str:
        print(f"  {label}\n    {command}")
        if not self.check:
            return ""
        answer = got()
        wrong = answer != expected
        self.failures += wrong
        print(f"    -> {answer} {'WRONG (expected ' + expected + ')' if wrong else 'ok'}")
        return answer

    def headers(self, who: str | None, **extra: str) -> dict[str, str]:
        auth = {"Authorization": f"Bearer {self.users[who].token}"} if who else {}
        return {**auth, **extra}

    def status(
        self,
        method: str,
        path: str,
        who: str | None = None,
        *,
        key: str | None = None,
        json: object = None,
    ) -> str:
        extra = {"Idempotency-Key": key} if key else {}
        response = httpx.request(method, self.base + path, json=json,
                                 headers=self.headers(who, **extra))  # fmt: skip
        return str(response.status_code)


def curl(method: str, path: str, base: str, who: str | None = None, extra: str = "") -> str:
    auth = f' -H "Authorization: Bearer ${who.upper()}"' if who else ""
    verb = "" if method == "GET" else f" -X {method}"
    return f"curl -i{verb}{auth}{extra} {base}{path}"


def walk(walk: Walk) -> int:
    base = walk.base
    print(f"\nauthgate demo: open {base}/members/ in a browser: you are sent to sign in (create")
    print("an account there and sign in with it), then back to the member page; your account:")
    print(f"{base}/_authgate/account\n")
    for name, user in walk.users.items():
        print(f"{name}:  export {name.upper()}='{user.token}'")
    print()
    for label, path, who, expected in [
        ("anyone, a public page", "/public/hello", None, "200"),
        ("anyone, a protected page (browser: sent to sign in)", "/docs/", None, "302"),
        ("anyone, the API (401 with WWW-Authenticate)", "/api/members", None, "401"),
        ("alice (admin), the admin area", "/admin/", "alice", "200"),
        ("bob (viewer), the admin area", "/admin/", "bob", "403"),
        ("bob, a protected page", "/docs/", "bob", "200"),
    ]:
        walk.step(label, curl("GET", path, base, who), expected, _get(walk, path, who))
    if walk.check:
        label = "a browser signs up, signs in and comes back to /docs/"
        walk.step(label, "(in a browser)", "200", lambda: str(_browser_sign_up(base)))
    _members(walk)
    _service_account(walk)
    _account_deletion(walk)
    return walk.failures


def _get(walk: Walk, path: str, who: str | None) -> Callable[[], str]:
    return lambda: walk.status("GET", path, who)


def _members(walk: Walk) -> None:
    """Writes through the gateway's idempotency plugin to the member service."""
    base, key = walk.base, f"demo-{secrets.token_hex(8)}"
    body = {"display_name": "Alice", "bio": "made by bin/demo"}
    other = {"display_name": "Someone else"}
    extra = f" -H 'Idempotency-Key: {key}' -H 'Content-Type: application/json'"

    def post(data: dict[str, str]) -> str:
        return curl("POST", "/api/members", base, "alice", f"{extra} -d '{json.dumps(data)}'")

    created: dict[str, object] = {}

    def send(data: dict[str, str]) -> httpx.Response:
        headers = walk.headers("alice", **{"Idempotency-Key": key})
        return httpx.post(base + "/api/members", json=data, headers=headers)

    def first() -> str:
        response = send(body)
        if response.status_code == 201:
            created.update(response.json())
        return str(response.status_code)

    def again() -> str:
        response = send(body)
        listed = httpx.get(base + "/api/members", headers=walk.headers("alice")).json()
        mine = [m for m in listed["members"] if m["id"] == created.get("id")]
        replayed = response.headers.get("idempotent-replayed")
        return f"{response.status_code} replayed={replayed} members={len(mine)}"

    walk.step("alice creates a member (an Idempotency-Key makes retries safe)", post(body),
              "201", first)  # fmt: skip
    walk.step("the same request again: replayed, still one member", post(body),
              "201 replayed=true members=1", again)  # fmt: skip
    walk.step("the same key with another body", post(other), "422",
              lambda: str(send(other).status_code))  # fmt: skip
    path = f"/api/members/{created.get('id', '<id>')}"
    walk.step("bob cannot delete alice's member", curl("DELETE", path, base, "bob"), "403",
              lambda: walk.status("DELETE", path, "bob"))  # fmt: skip


def _issuer_cli(walk: Walk, *args: str) -> dict[str, object]:
    done = subprocess.run(
        [str(BIN / "authgate-issuer"), *args, "--json"], env=walk.issuer_env,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"authgate-issuer {args[0]} {args[1]}: {done.stderr.strip()}")
    result: dict[str, object] = json.loads(done.stdout)
    return result


def _service_account(walk: Walk) -> None:
    """A reporting job without a browser: a service account gets a token with the client
    credentials grant and reads the member statistics through nginx and the gateway;
    suspending it stops its token as a revocation would."""
    base = walk.base
    create = "authgate-issuer clients create reports-job --scope members:read"
    print(f"  a service account for a reporting job (docs/api-clients.md)\n    {create}")
    if not walk.check:
        print(f"    curl -u \"$CLIENT_ID:$CLIENT_SECRET\" -d grant_type=client_credentials"
              f" {base}/token")  # fmt: skip
        print(f'    curl -H "Authorization: Bearer $JOB" {base}/api/stats')
        return
    made = _issuer_cli(walk, "clients", "create", "reports-job", "--scope", "members:read")
    cid, secret = str(made["client_id"]), str(made["client_secret"])
    job: dict[str, str] = {}

    def get_token() -> str:
        answer = httpx.post(f"{base}/token", data={"grant_type": "client_credentials"},
                            auth=(cid, secret))  # fmt: skip
        if answer.status_code == 200:
            job["token"] = answer.json()["access_token"]
        return str(answer.status_code)

    def stats(token: str) -> str:
        answer = httpx.get(f"{base}/api/stats", headers={"Authorization": f"Bearer {token}"})
        return str(answer.status_code)

    walk.step("it gets a token (client credentials grant)",
              f'curl -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=client_credentials {base}/token',
              "200", get_token)  # fmt: skip
    walk.step("it reads the statistics (for service accounts only)",
              f'curl -H "Authorization: Bearer $JOB" {base}/api/stats', "200",
              lambda: stats(job.get("token", "")))  # fmt: skip
    walk.step("bob (a person) may not", curl("GET", "/api/stats", base, "bob"), "403",
              lambda: walk.status("GET", "/api/stats", "bob"))  # fmt: skip
    refused_after: list[float] = []

    def suspend() -> str:
        _issuer_cli(walk, "clients", "suspend", cid)
        started = time.monotonic()
        while stats(job.get("token", "")) != "401":
            if time.monotonic() - started > 5:
                return "token still accepted after 5 s"
        refused_after.append(time.monotonic() - started)
        return "token refused"

    walk.step("suspending the account stops its token", f"authgate-issuer clients suspend {cid}",
              "token refused", suspend)  # fmt: skip
    if refused_after:
        print(f"    (its token was refused {refused_after[0] * 1000:.0f} ms after the command)")
    walk.step("... within 100 ms", "(timed)", "True",
              lambda: str(bool(refused_after) and refused_after[0] <= 0.1))  # fmt: skip


def _account_deletion(walk: Walk) -> None:
    """alice deletes her account: the issuer announces user.deleted, the member service
    removes her data, and her token stops working at once."""
    alice = walk.users["alice"]
    tail: subprocess.Popen[str] | None = None
    printed: list[str] = []
    if walk.check:  # `authgate-issuer events tail`, as a person would watch it
        tail = subprocess.Popen(
            [str(BIN / "authgate-issuer"), "events", "tail", "--routing-key", "user.#"],
            env=walk.issuer_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert tail.stderr is not None and tail.stdout is not None
        tail.stderr.readline()  # "tailing …": bound and listening
        out = tail.stdout
        threading.Thread(target=lambda: printed.extend(out), daemon=True).start()
    try:
        refused_after: list[float] = []

        def delete() -> str:
            status = walk.status("DELETE", "/me", "alice")
            started = time.monotonic()
            while walk.status("GET", "/api/members", "alice") != "401":
                if time.monotonic() - started > 5:
                    return f"{status}, token still accepted after 5 s"
            refused_after.append(time.monotonic() - started)
            return f"{status}, token refused"

        walk.step("alice deletes her account", curl("DELETE", "/me", walk.base, "alice"),
                  "204, token refused", delete)  # fmt: skip
        if refused_after:
            print(f"    (her token was refused {refused_after[0] * 1000:.0f} ms after the answer)")
        walk.step("... within 100 ms", "(timed)", "True",
                  lambda: str(bool(refused_after) and refused_after[0] <= 0.1))  # fmt: skip
        members = f"curl -H 'X-Auth-User: {alice.uid}' {walk.members}/members  # behind nginx"
        walk.step("the member service removed her members (user.deleted, over RabbitMQ)",
                  members, "0", lambda: str(_members_of(walk.members, alice.uid)))  # fmt: skip
        if tail is not None:
            saw = str(_tail_saw(printed, "user.deleted", alice.uid))
            walk.step("authgate-issuer events tail showed it", "authgate-issuer events tail",
                      "True", lambda: saw)  # fmt: skip
    finally:
        if tail is not None:
            tail.terminate()
            tail.wait(timeout=10)


def _members_of(members: str, uid: str, timeout: float = 10) -> int:
    """How many members `uid` still has once the consumer has caught up (or `timeout`)."""
    deadline = time.monotonic() + timeout
    while True:
        count = len(httpx.get(f"{members}/members", headers={"X-Auth-User": uid}).json()["members"])
        if count == 0 or time.monotonic() > deadline:
            return count
        time.sleep(0.05)


def _tail_saw(lines: list[str], routing_key: str, subject: str) -> bool:
    """Whether the tail printed the event (waiting up to 10 s for it)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if any(routing_key in line and subject in line for line in list(lines)):
            return True
        time.sleep(0.05)
    return False


def _browser_sign_up(base: str) -> int:
    """What a person does in a browser: protected page → sign-in page → sign up → sign in
    (registration signs nobody in: it answers alike whether the email was taken) → back."""
    with httpx.Client(follow_redirects=True, timeout=15) as browser:
        login = browser.get(f"{base}/docs/")
        email, password = f"demo-{secrets.token_hex(4)}@example.test", secrets.token_urlsafe(16)
        form = {"email": email, "name": "Demo", "password": password,
                "rd": str(login.url.params.get("rd", ""))}  # fmt: skip
        for action in ("/register", "/login/local"):
            form["login_csrf"] = login.text.split('name="login_csrf" value="')[1].split('"')[0]
            login = browser.post(str(login.url.copy_with(path=action, query=None)), data=form)
        return login.status_code if str(login.url).startswith(base) else 0
