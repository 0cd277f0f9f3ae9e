"""The issuer as a Starlette app: the parts, wired once at start, and the routes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from authgate import serving
from authgate.contract import JWKS_PATH
from authgate.logs import configure_logging

from . import admin, api, client_admin, device_pages, grants, local, login, pages
from .body_limit import BodyLimit
from .errors import IssuerError, Unavailable
from .security_headers import SecurityHeaders, content_security_policy
from .service import Issuer
from .settings import Settings, load_settings
from .web import error_response, problem_response

log = logging.getLogger("authgate.issuer")

#: Routes a browser lands on: errors there are pages, not JSON.
BROWSER_PATHS = ("/login", "/callback/", "/register", "/link/", "/_authgate/")


async def _issuer_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, IssuerError):  # registered for IssuerError only
        raise exc
    return render_error(request, exc)


def render_error(request: Request, exc: IssuerError) -> Response:
    """An error as the route's callers read it."""
    path = request.url.path
    # Pages a browser navigates to, and the login page's own form posts.
    if path.startswith(BROWSER_PATHS):
        return login.error_page(request, exc)
    if path.startswith("/admin/"):
        return problem_response(exc)
    return error_response(exc)


async def _redis_error(request: Request, exc: Exception) -> Response:
    log.error("redis unavailable: %s", exc)
    return await _issuer_error(request, Unavailable("the session store is unavailable"))


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or load_settings()
    issuer = Issuer(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        log.info(
            "issuer at %s with providers: %s",
            settings.public_url,
            ", ".join(issuer.providers) or "none",
        )
        tasks = issuer.background()
        yield
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await issuer.close()

    routes = [
        Route("/login", login.login_page, methods=["GET"]),
        Route("/login/local", local.sign_in, methods=["POST"]),
        Route("/register", local.register, methods=["POST"]),
        Route("/register", local.sign_up_page, methods=["GET"]),
        Route("/_authgate/account", pages.account, methods=["GET"]),
        Route("/_authgate/sessions/end", pages.end_session, methods=["POST"]),
        Route("/_authgate/sessions/end-all", pages.end_all, methods=["POST"]),
        Route("/_authgate/signout", pages.sign_out_page, methods=["GET"]),
        Route("/_authgate/signout", pages.sign_out, methods=["POST"]),
        Route("/_authgate/signed-out", pages.signed_out, methods=["GET"]),
        Route("/_authgate/forbidden", pages.forbidden, methods=["GET", "POST"]),
        Route("/_authgate/static/{name}", pages.static, methods=["GET"]),
        Route(grants.DEVICE_PAGE, device_pages.device_page, methods=["GET"]),
        Route(grants.DEVICE_PAGE, device_pages.device_answer, methods=["POST"]),
        Route("/login/{provider}", login.start, methods=["GET"]),
        Route("/link/{provider}", login.link, methods=["POST"]),
        Route("/callback/{provider}", login.callback, methods=["GET"]),
        Route("/token", api.token, methods=["POST"]),
        Route("/device_authorization", grants.device_authorization, methods=["POST"]),
        Route("/logout", api.logout, methods=["POST"]),
        Route("/revoke", api.revoke, methods=["POST"]),
        Route("/me", api.me, methods=["GET"]),
        Route("/me", api.delete_me, methods=["DELETE"]),
        Route("/.well-known/openid-configuration", api.openid_configuration, methods=["GET"]),
        Route(JWKS_PATH, api.jwks_document, methods=["GET"]),
        Route("/admin/users", admin.list_users, methods=["GET"]),
        Route("/admin/users/{user}", admin.show_user, methods=["GET"]),
        Route("/admin/users/{user}", admin.delete_user, methods=["DELETE"]),
        Route("/admin/users/{user}/roles", admin.set_roles, methods=["PUT"]),
        Route("/admin/users/{user}/suspend", admin.suspend, methods=["POST"]),
        Route("/admin/users/{user}/reactivate", admin.reactivate, methods=["POST"]),
        Route("/admin/clients", client_admin.list_clients, methods=["GET"]),
        Route("/admin/clients", client_admin.create_client, methods=["POST"]),
        Route("/admin/clients/{client}", client_admin.show_client, methods=["GET"]),
        Route("/admin/clients/{client}", client_admin.delete_client, methods=["DELETE"]),
        Route("/admin/clients/{client}/grants", client_admin.set_grants, methods=["PUT"]),
        Route("/admin/clients/{client}/suspend", client_admin.suspend, methods=["POST"]),
        Route("/admin/clients/{client}/reactivate", client_admin.reactivate, methods=["POST"]),
        Route("/admin/clients/{client}/credentials", client_admin.new_credential, methods=["POST"]),
        Route(
            "/admin/clients/{client}/credentials/{credential}",
            client_admin.remove_credential,
            methods=["DELETE"],
        ),
        Route("/healthz", api.healthz, methods=["GET"]),
        Route("/readyz", api.readyz, methods=["GET"]),
        Route("/metrics", api.metrics, methods=["GET"]),
    ]
    csp = content_security_policy(settings.return_origins, images=_logo_origin(settings))
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        # Outermost first: the 413 of the body limit carries the security headers too.
        middleware=[
            Middleware(SecurityHeaders, csp=csp),
            Middleware(BodyLimit, render=render_error),
        ],
        exception_handlers={IssuerError: _issuer_error, RedisError: _redis_error},
    )
    app.state.issuer = issuer
    return app


def _logo_origin(settings: Settings) -> tuple[str, ...]:
    """The logo's origin, when it is on another site (a path is ours: 'self')."""
    if settings.logo_url is None or settings.logo_url.startswith("/"):
        return ()
    parts = urlsplit(settings.logo_url)
    return (f"{parts.scheme}://{parts.netloc}",)


def create_app_from_env() -> Starlette:
    """Factory for uvicorn: settings from the environment."""
    settings = load_settings()
    configure_logging(settings.log_level)
    serving.configure(settings.header_timeout, settings.body_timeout)
    return create_app(settings)
