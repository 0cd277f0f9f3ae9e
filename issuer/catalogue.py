"""Every word the issuer's pages show, in each language they speak: one catalogue.

A page asks for a message by key (`t("sign_in.title")`); a key missing from a language
is an error at import (`_check`), never an English word on a Korean page.
"""

from __future__ import annotations

from collections.abc import Mapping

LANGUAGES = ("en", "ko")
DEFAULT_LANGUAGE = "en"
#: A language's own name, for the switch between them.
NAMES = {"en": "English", "ko": "한국어"}

MESSAGES: Mapping[str, Mapping[str, str]] = {
    "lang.label": {"en": "Language", "ko": "언어"},
    "nav.account": {"en": "Your account", "ko": "내 계정"},
    "nav.sign_out": {"en": "Sign out", "ko": "로그아웃"},
    "field.email": {"en": "Email", "ko": "이메일"},
    "field.password": {"en": "Password", "ko": "비밀번호"},
    "field.new_password": {"en": "Password (10 characters or more)",
                           "ko": "비밀번호 (10자 이상)"},
    "field.name": {"en": "Name (optional)", "ko": "이름 (선택)"},
    "sign_in.title": {"en": "Sign in", "ko": "로그인"},
    "sign_in.button": {"en": "Sign in", "ko": "로그인"},
    "sign_in.with_email": {"en": "Or with your email", "ko": "또는 이메일로"},
    "sign_in.none": {"en": "No way to sign in is set up yet.",
                     "ko": "아직 설정된 로그인 방법이 없습니다."},
    "sign_in.new_here": {"en": "New here?", "ko": "처음이신가요?"},
    "sign_in.create": {"en": "Create an account", "ko": "계정 만들기"},
    "sign_in.registered": {
        "en": "If that email had no account, it has one now: sign in below. If it had one, "
              "we have let its owner know.",
        "ko": "그 이메일로 된 계정이 없었다면 이제 만들어졌습니다. 아래에서 로그인하세요. "
              "이미 있었다면 계정 주인에게 알렸습니다.",
    },
    "provider.kakao": {"en": "Login with Kakao", "ko": "카카오 로그인"},
    "provider.github": {"en": "Sign in with GitHub", "ko": "GitHub으로 로그인"},
    "provider.oidc": {"en": "Continue with {name}", "ko": "{name}(으)로 계속하기"},
    "sign_up.title": {"en": "Create an account", "ko": "계정 만들기"},
    "sign_up.button": {"en": "Create account", "ko": "계정 만들기"},
    "sign_up.have_account": {"en": "Already have an account?", "ko": "이미 계정이 있나요?"},
    "sign_up.sign_in": {"en": "Sign in", "ko": "로그인"},
    "error.title": {"en": "Sign-in didn't work", "ko": "로그인하지 못했습니다"},
    "error.start_again": {"en": "Start again", "ko": "다시 시작하기"},
    "error.reference": {"en": "Reference", "ko": "참고 코드"},
    "error.wait": {"en": "Too many attempts: try again in {seconds} seconds.",
                   "ko": "시도가 너무 많습니다. {seconds}초 후에 다시 시도해 주세요."},
    "error.invalid_credentials": {"en": "That email and password don't match an account.",
                                  "ko": "이메일 또는 비밀번호가 맞지 않습니다."},
    "error.invalid_state": {
        "en": "This sign-in link has expired or was already used. Please start again.",
        "ko": "로그인 링크가 만료되었거나 이미 사용되었습니다. 다시 시작해 주세요.",
    },
    "error.access_denied": {"en": "Sign-in was cancelled.", "ko": "로그인이 취소되었습니다."},
    "error.account_suspended": {"en": "This account is suspended.",
                                "ko": "이 계정은 정지되었습니다."},
    "error.invalid_request": {"en": "Please check what you entered: {detail}",
                              "ko": "입력한 내용을 확인해 주세요: {detail}"},
    "error.unavailable": {"en": "Sign-in is unavailable just now. Please try again shortly.",
                          "ko": "지금은 로그인할 수 없습니다. 잠시 후 다시 시도해 주세요."},
    "error.other": {"en": "Something went wrong while signing you in.",
                    "ko": "로그인 중에 문제가 생겼습니다."},
    "account.title": {"en": "Your account", "ko": "내 계정"},
    "account.signed_in_as": {"en": "Signed in as {who}", "ko": "{who}(으)로 로그인됨"},
    "account.roles": {"en": "Roles", "ko": "역할"},
    "account.no_roles": {"en": "none", "ko": "없음"},
    "account.sessions": {"en": "Where you're signed in", "ko": "로그인된 곳"},
    "account.this_device": {"en": "This browser", "ko": "지금 이 브라우저"},
    "account.unknown_device": {"en": "Unknown browser", "ko": "알 수 없는 브라우저"},
    "account.since": {"en": "Signed in {when} with {method}",
                      "ko": "{when}에 {method}(으)로 로그인"},
    "account.end": {"en": "Sign out there", "ko": "여기서 로그아웃"},
    "account.end_all": {"en": "Sign out everywhere", "ko": "모든 곳에서 로그아웃"},
    "account.ended": {"en": "That session has ended.", "ko": "그 세션을 끝냈습니다."},
    "sign_out.title": {"en": "Sign out?", "ko": "로그아웃할까요?"},
    "sign_out.body": {"en": "You are signed in as {who}.",
                      "ko": "{who}(으)로 로그인되어 있습니다."},
    "sign_out.button": {"en": "Sign out", "ko": "로그아웃"},
    "sign_out.cancel": {"en": "Stay signed in", "ko": "로그인 유지"},
    "signed_out.title": {"en": "You're signed out", "ko": "로그아웃되었습니다"},
    "signed_out.body": {"en": "You can close this window, or sign in again.",
                        "ko": "이 창을 닫거나 다시 로그인할 수 있습니다."},
    "signed_out.again": {"en": "Sign in again", "ko": "다시 로그인"},
    "forbidden.title": {"en": "You don't have access to this page",
                        "ko": "이 페이지에 접근할 권한이 없습니다"},
    "forbidden.body": {"en": "It needs permissions your account doesn't have. If you think "
                             "it should, ask whoever runs this site.",
                       "ko": "현재 계정에 없는 권한이 필요합니다. 권한이 있어야 한다면 "
                             "사이트 관리자에게 문의하세요."},
    "forbidden.as": {"en": "You're signed in as {who}.", "ko": "{who}(으)로 로그인되어 있습니다."},
    "forbidden.back": {"en": "Go back", "ko": "돌아가기"},
    "forbidden.other": {"en": "Sign in as someone else", "ko": "다른 계정으로 로그인"},
    "device.title": {"en": "Sign in on a device", "ko": "기기에서 로그인"},
    "device.intro": {"en": "Enter the code your command-line tool or device shows you.",
                     "ko": "명령줄 도구나 기기에 표시된 코드를 입력하세요."},
    "device.code": {"en": "Code (8 letters, like BCDF-GHJK)",
                    "ko": "코드 (BCDF-GHJK 같은 8글자)"},
    "device.next": {"en": "Continue", "ko": "계속"},
    "device.bad_code": {"en": "That code isn't valid, was already used or has expired. "
                              "Check it, or start again on your device.",
                        "ko": "코드가 올바르지 않거나 이미 사용되었거나 만료되었습니다. "
                              "확인하거나 기기에서 다시 시작하세요."},
    "device.confirm_title": {"en": "Allow this sign-in?", "ko": "이 로그인을 허용할까요?"},
    "device.asks": {"en": "{client} asks to act as you ({who}).",
                    "ko": "{client}이(가) {who}(으)로 동작하려고 합니다."},
    "device.scopes": {"en": "It asks for: {scopes}", "ko": "요청한 권한: {scopes}"},
    "device.no_scopes": {"en": "It asks for no extra permissions.",
                         "ko": "추가 권한은 요청하지 않았습니다."},
    "device.check": {"en": "Allow it only if you started this yourself and your device shows "
                           "this code:",
                     "ko": "직접 시작했고 기기에 이 코드가 표시될 때만 허용하세요:"},
    "device.allow": {"en": "Allow", "ko": "허용"},
    "device.deny": {"en": "Deny", "ko": "거부"},
    "device.allowed_title": {"en": "You're signed in on your device",
                             "ko": "기기에서 로그인되었습니다"},
    "device.allowed": {"en": "Go back to {client}: it will carry on by itself. You can end "
                             "this sign-in any time on your account page.",
                       "ko": "{client}(으)로 돌아가세요. 저절로 계속됩니다. 이 로그인은 "
                             "언제든 내 계정 페이지에서 끝낼 수 있습니다."},
    "device.denied_title": {"en": "Sign-in denied", "ko": "로그인을 거부했습니다"},
    "device.denied": {"en": "Nothing was signed in. You can close this page.",
                      "ko": "아무것도 로그인되지 않았습니다. 이 페이지를 닫아도 됩니다."},
}  # fmt: skip


def message(key: str, language: str, **values: object) -> str:
    text = MESSAGES[key][language]
    return text.format(**values) if values else text


def choose(query: str | None, cookie: str | None, accept_language: str) -> str:
    """The page's language: asked for in the query, else kept in the cookie, else the
    first of the browser's (RFC 9110 §12.5.4, by q-value) that we speak."""
    for asked in (query, cookie):
        if asked in LANGUAGES:
            return asked
    ranked = []
    for position, item in enumerate(accept_language.split(",")):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        primary = tag.strip().lower().split("-")[0]
        if quality > 0 and primary in LANGUAGES:
            ranked.append((-quality, position, primary))
    return min(ranked)[2] if ranked else DEFAULT_LANGUAGE


def _check() -> None:
    missing = [f"{key}: {lang}" for key, texts in MESSAGES.items()
               for lang in LANGUAGES if lang not in texts]  # fmt: skip
    if missing:
        raise RuntimeError(f"the catalogue lacks {', '.join(missing)}")


_check()
