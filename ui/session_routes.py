"""The dashboard's session cookie: the two routes `app.py`'s `st.App` serves beside the pages.

A Streamlit script cannot set an HttpOnly cookie, so signing in takes one round trip through here: the
page checks the password, issues a one-time ticket (`tracking.governance.issue_sign_in_ticket`) and
has the browser post it to `POST /auth/session`, which opens the session, sets the cookie and
redirects back to the address the browser was on. `POST /auth/signout` ends the session and clears
the cookie. Every script run then reads the cookie (`st.context.cookies`) and asks the store whether
its session still lives, so a reload, a second tab, a pasted link or a link from a table stay signed
in, and a sign-out, a disabled account or a timeout end the session in every tab.

Both routes change state, so they refuse requests another site made (login CSRF: signing a victim's
browser into the attacker's account), and they redirect only to a path on this server.
"""

from __future__ import annotations

import functools
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

import tracking
from tracking.governance import redeem_sign_in_ticket, sign_out

COOKIE = "tracking_session"
COOKIE_SECONDS = 12 * 3600  # the store ends every session after 12 hours anyway (and sooner when idle)
SESSION_PATH = "/auth/session"
SIGN_OUT_PATH = "/auth/signout"


def base_path() -> str:
    """The server's base URL path (`server.baseUrlPath`) as `/prefix`, or "" at the root."""
    from streamlit import config

    base = (config.get_option("server.baseUrlPath") or "").strip("/")
    return f"/{base}" if base else ""


def local_path(target: object) -> str:
    """`target` when it is a path on this server (no scheme, no host, no `//` or backslash tricks), else the
    dashboard's home: the routes never send a browser to another site."""
    home = base_path() + "/"
    if not isinstance(target, str) or not target.startswith("/") or target.startswith("//"):
        return home
    if "\\" in target or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return home
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return home
    return target


def cross_site_refusal(request: Request) -> str | None:
    """Why a state-changing request is refused as coming from another site, or None when this server's page sent it.

    Browsers say where a request came from in `Sec-Fetch-Site`; older ones only in `Origin`. A request
    with neither did not come from a browser page and has no business with a browser's cookie.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return None if site == "same-origin" else f"Refused: this request came from another site ({site})."
    origin = request.headers.get("origin")
    if origin is None:
        return "Refused: a sign-in or sign-out must come from the dashboard's own page."
    if urlsplit(origin).netloc != request.headers.get("host"):
        return "Refused: this request came from another site."
    return None


@functools.cache
def _store() -> tracking.Store:
    """The store the routes use: one per server process, like the pages' `ui.data.get_store` (a store per request
    would leave an engine and its connections behind at every sign-in)."""
    return tracking.open_store()


def _secure(request: Request) -> bool:
    from streamlit import config

    return request.url.scheme == "https" or bool(config.get_option("server.sslCertFile"))


async def _open(request: Request) -> Response:
    refusal = cross_site_refusal(request)
    if refusal:
        return PlainTextResponse(refusal, status_code=403)
    form = await request.form()
    target = local_path(form.get("next"))
    token = await run_in_threadpool(redeem_sign_in_ticket, _store(), form.get("ticket"))
    response = RedirectResponse(target, status_code=303)  # a GET of the page asked for, signed in
    if token is not None:  # else the ticket was used, expired or forged: the page asks to sign in again
        response.set_cookie(COOKIE, token, max_age=COOKIE_SECONDS, path=base_path() or "/", secure=_secure(request),
                            httponly=True, samesite="lax")  # fmt: skip
    return response


async def _close(request: Request) -> Response:
    refusal = cross_site_refusal(request)
    if refusal:
        return PlainTextResponse(refusal, status_code=403)
    form = await request.form()
    token = request.cookies.get(COOKIE)
    if token:
        await run_in_threadpool(sign_out, _store(), token)
    response = RedirectResponse(local_path(form.get("next")), status_code=303)
    response.delete_cookie(COOKIE, path=base_path() or "/", secure=_secure(request), httponly=True, samesite="lax")
    return response


def session_routes() -> list[Route]:
    """The routes to pass to `st.App(routes=...)` (under the server's base URL path)."""
    return [
        Route(base_path() + SESSION_PATH, _open, methods=["POST"]),
        Route(base_path() + SIGN_OUT_PATH, _close, methods=["POST"]),
    ]
