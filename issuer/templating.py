"""The issuer's pages: Jinja2 templates (autoescaped) through Starlette's templating, one
base layout, words from the catalogue in the reader's language, the product's name, logo
and colour, and the stylesheet and script served from here (no CDN, no build step)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from . import catalogue
from .settings import Settings

HERE = Path(__file__).resolve().parent
STATIC_PATH = "/_authgate/static/"
LANG_COOKIE = "authgate_lang"
LANG_COOKIE_AGE = 365 * 86400
#: The stylesheet's accent, replaced by AUTHGATE_BRAND_COLOR when it is served.
_DEFAULT_ACCENT = "--accent: #1f5fbf;"


def language(request: Request) -> str:
    """The reader's language (catalogue.choose): asked for, kept, or the browser's."""
    return catalogue.choose(
        request.query_params.get("lang"), request.cookies.get(LANG_COOKIE),
        request.headers.get("accept-language", ""),
    )  # fmt: skip


class Pages:
    def __init__(self, settings: Settings) -> None:
        environment = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,  # a missing value is a bug, not a blank
        )
        self.templates = Jinja2Templates(env=environment)
        self.settings = settings
        css = (HERE / "static" / "authgate.css").read_text()
        self.static = {
            "authgate.css": (css.replace(_DEFAULT_ACCENT, f"--accent: {settings.brand_color};"),
                             "text/css; charset=utf-8"),
            "authgate.js": ((HERE / "static" / "authgate.js").read_text(),
                            "text/javascript; charset=utf-8"),
        }  # fmt: skip

    def render(
        self,
        request: Request,
        template: str,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        here: str | None = None,
        **context: Any,
    ) -> Response:
        """`template` in the reader's language. `here` is the page's own URL to switch
        language on (default: this URL, for a GET)."""
        asked = request.query_params.get("lang")
        lang = language(request)
        if here is None:
            here = str(request.url.path) if request.method == "GET" else "/login"
            query = {k: v for k, v in request.query_params.items() if k != "lang"}
            if request.method == "GET" and query:
                here += "?" + urlencode(query)
        switch = [
            (code, catalogue.NAMES[code], _with_lang(here, code))
            for code in catalogue.LANGUAGES
            if code != lang
        ]

        def t(key: str, **values: object) -> str:
            return catalogue.message(key, lang, **values)

        response = self.templates.TemplateResponse(
            request,
            template,
            {"t": t, "lang": lang, "switch": switch, "static": STATIC_PATH,
             "product": self.settings.product_name, "logo": self.settings.logo_url,
             **context},
            status_code=status,
            headers={"Cache-Control": "no-store", "Content-Language": lang,
                     **(headers or {})},
        )  # fmt: skip
        if asked == lang:
            response.set_cookie(LANG_COOKIE, lang, max_age=LANG_COOKIE_AGE, path="/",
                                samesite="lax", secure=self.settings.secure_cookies)  # fmt: skip
        return response

    def message(self, request: Request, key: str, **values: object) -> str:
        """One catalogue message in the reader's language (for a page's error line)."""
        return catalogue.message(key, language(request), **values)

    def asset(self, name: str) -> Response | None:
        found = self.static.get(name)
        if found is None:
            return None
        body, media_type = found
        return Response(body, media_type=media_type,
                        headers={"Cache-Control": "public, max-age=3600"})  # fmt: skip


def _with_lang(url: str, language: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}lang={language}"
