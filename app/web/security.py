"""What keeps a Gatescope server safe to expose: login, origin checks, limits and response headers.

What this is:
- `login_router`: GET /login (a form) and POST /login (form field `token`): the right token sets
  the HttpOnly, SameSite=Strict cookie `gatescope_token` and redirects to /; a wrong one answers a
  401 page. The cookie is accepted wherever the Bearer header is (deps.require_token, ws.py).
- `presented_token(conn)`: the token a request or websocket carries: Authorization: Bearer, else
  ?token=, else the cookie.
- `origin_allowed(conn, settings)`: a websocket's Origin, when it sends one, is the server's own
  (it names the Host) or one of GATESCOPE_ALLOWED_ORIGINS; ws.py closes with 4403 otherwise.
- Pure ASGI middlewares, installed by `install(app)` (outermost first): `SecurityHeaders` (the one
  CSP, nosniff, Referrer-Policy, X-Frame-Options on every response), `BodyLimit` (413 over
  MAX_BODY_BYTES, or over BODY_LIMITS for an attached run's frames and a run file's import, by
  Content-Length and by counting streamed bytes), `RunRateLimit` (a token bucket per client IP on
  run creation, attaching and imports included: 429 with Retry-After) and, only when
  GATESCOPE_ALLOWED_ORIGINS is set, Starlette's CORSMiddleware for those origins.
- `warn_if_exposed(settings)`: a WARNING when the server listens beyond loopback without a token.

What this is not: the token check itself (deps.token_ok, hmac.compare_digest) or error mapping
(errors.py).
"""

from __future__ import annotations

import ipaddress
import logging
import math
import re
import threading
import time
from collections import OrderedDict
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import __version__
from app.core.frames import MAX_FRAME_BYTES
from app.services.attached import MAX_IMPORT_BYTES
from app.settings import Settings

log = logging.getLogger("app.web.security")

COOKIE = "gatescope_token"
MAX_BODY_BYTES = 2 * 1024 * 1024  # 1 MB of custom text, JSON-escaped, plus the rest of a config
# the routes that take more: one attached run's probe frame, and a whole run file to import
BODY_LIMITS: tuple[tuple[re.Pattern[str], int], ...] = (
    (re.compile(r"/api/runs/[^/]+/frames"), MAX_FRAME_BYTES),
    (re.compile(r"/api/import"), MAX_IMPORT_BYTES),
)
LOGIN_BODY_BYTES = 16 * 1024
RATE_LIMITED = frozenset(  # a request counts once, however many runs it starts (a group: up to 8)
    {
        ("POST", "/api/runs"),
        ("POST", "/api/compare"),
        ("POST", "/api/groups"),
        ("POST", "/api/sweeps"),
        ("POST", "/api/attach"),
        ("POST", "/api/import"),
    }
)
MAX_BUCKETS = 10_000  # client IPs remembered by the rate limiter (least recently seen go first)

# the one Content-Security-Policy: every response gets it from SecurityHeaders (pages set none)
CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",  # modules from this origin only: no inline script, no eval
        "style-src 'self' 'unsafe-inline'",  # plotly.js styles its own elements
        "img-src 'self' data: blob:",  # heatmaps are canvases drawn into images (data: and blob: URLs)
        "connect-src 'self' ws: wss:",  # the API and the run websocket
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",  # the login form
        "frame-ancestors 'none'",
    ]
)
HEADERS: dict[str, str] = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
}
_OURS = frozenset(name.encode() for name in HEADERS)


# -- the token a client presents --------------------------------------------------------------


def presented_token(conn: HTTPConnection) -> str | None:
    """Authorization: Bearer <token>, else ?token=, else the login cookie."""
    authorization = conn.headers.get("authorization", "")
    if authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return conn.query_params.get("token") or conn.cookies.get(COOKIE)


def origin_allowed(conn: HTTPConnection, settings: Settings) -> bool:
    """True without an Origin header (not a browser), or if it is this server or an allowed origin."""
    origin = conn.headers.get("origin")
    if origin is None:
        return True
    origin = origin.strip().rstrip("/")
    if origin in settings.origins:
        return True
    host = conn.headers.get("host")
    return host is not None and urlsplit(origin).netloc.lower() == host.strip().lower()


# -- login ------------------------------------------------------------------------------------

login_router = APIRouter(include_in_schema=False)


def _templates() -> Jinja2Templates:
    from app.web.pages import templates  # the pages' Jinja environment (templates/)

    return templates


def _login_page(request: Request, status_code: int = 200, error: str | None = None) -> HTMLResponse:
    settings: Settings = request.app.state.settings
    return _templates().TemplateResponse(
        request,
        "login.html",
        {"version": __version__, "error": error, "needs_token": settings.token is not None},
        status_code=status_code,
    )


@login_router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> HTMLResponse:
    """A form that asks for the server's token."""
    return _login_page(request)


@login_router.post("/login", response_model=None)
async def login(request: Request) -> Response:
    """Check the form's `token`: right, set the cookie and go to /; wrong, a 401 page."""
    from app.web.deps import token_ok

    body = await request.body()
    if len(body) > LOGIN_BODY_BYTES:
        return _login_page(request, 413, "That is far too long to be the token.")
    token = parse_qs(body.decode("utf-8", errors="replace")).get("token", [""])[0]
    settings: Settings = request.app.state.settings
    if settings.token is None:
        return RedirectResponse("/", status_code=303)  # nothing to log in to
    if not token or not token_ok(settings, token):
        log.warning("failed login from %s", request.client.host if request.client else "?")
        return _login_page(request, 401, "That is not this server's token.")
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


# -- middlewares ------------------------------------------------------------------------------


class SecurityHeaders:
    """Set the security headers on every HTTP response, replacing any a route set itself: one CSP
    (/docs too: its Swagger UI is served from here and started by a script file, app/web/docs.py)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in _OURS]
                headers += [(name.encode(), value.encode()) for name, value in HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


def body_limit(path: str) -> int:
    """The most bytes a request body to `path` may have: BODY_LIMITS, else MAX_BODY_BYTES."""
    return next((limit for pattern, limit in BODY_LIMITS if pattern.fullmatch(path)), MAX_BODY_BYTES)


def _too_large(limit: int) -> JSONResponse:
    megabytes = limit // (1024 * 1024)
    return JSONResponse(
        {"detail": f"the request body is larger than {megabytes} MB, the most this server accepts"},
        status_code=413,
    )


class BodyLimit:
    """413 for a body over the path's limit (`body_limit`): at once by Content-Length, else as the
    bytes stream in."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(scope.get("path", ""))
        length = Headers(scope=scope).get("content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                declared = -1
            if declared < 0:
                await JSONResponse({"detail": "the Content-Length header is not a number"}, 400)(
                    scope, receive, send
                )
                return
            if declared > limit:
                await _too_large(limit)(scope, receive, send)
                return
        received = 0
        exceeded = False
        started = False

        async def counted() -> Message:
            nonlocal received, exceeded
            if exceeded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True  # the app sees the client leave; we answer 413 instead
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if exceeded and not started:
                return  # drop whatever the app answers to the cut-off body
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await _too_large(limit)(scope, receive, send)


class TokenBucket:
    """`rate` per minute, bursts of `burst`, per key; thread-safe, remembers at most MAX_BUCKETS keys."""

    def __init__(self, rate_per_minute: float, burst: int) -> None:
        self.rate = rate_per_minute / 60.0
        self.burst = float(burst)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str, now: float | None = None) -> float:
        """0.0 if `key` may go now (and uses one token), else how many seconds until it may."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / self.rate
            self._buckets[key] = (tokens, now)
            while len(self._buckets) > MAX_BUCKETS:
                self._buckets.popitem(last=False)
            return wait


class RunRateLimit:
    """429 with Retry-After when one client IP creates runs faster than the bucket allows."""

    def __init__(self, app: ASGIApp, rate_per_minute: float, burst: int) -> None:
        self.app = app
        self.bucket = TokenBucket(rate_per_minute, burst)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (scope.get("method"), scope.get("path")) in RATE_LIMITED:
            client = scope.get("client")
            wait = self.bucket.take(client[0] if client else "?")
            if wait > 0:
                seconds = max(1, math.ceil(wait))
                response = JSONResponse(
                    {
                        "detail": f"too many new runs from your address: try again in {seconds} s "
                        f"(at most {self.bucket.rate * 60:g} a minute, {self.bucket.burst:g} at once)"
                    },
                    status_code=429,
                    headers={"Retry-After": str(seconds)},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def is_loopback(host: str) -> bool:
    if host.strip("[]").lower() in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a hostname: assume it is reachable from elsewhere


def warn_if_exposed(settings: Settings) -> None:
    """Log a WARNING if the server listens beyond this machine with no token."""
    if settings.token is None and not is_loopback(settings.host):
        log.warning(
            "Gatescope listens on %s, which other machines can reach, and has no GATESCOPE_TOKEN: "
            "anyone who can reach port %d can start and delete runs. Set GATESCOPE_TOKEN.",
            settings.host,
            settings.port,
        )


def install(app: FastAPI, settings: Settings) -> None:
    """Add the login routes and the middlewares (call after every other middleware is added)."""
    app.include_router(login_router)
    if settings.origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    if settings.run_rate > 0:
        app.add_middleware(RunRateLimit, rate_per_minute=settings.run_rate, burst=settings.run_burst)
    app.add_middleware(BodyLimit)
    app.add_middleware(SecurityHeaders)  # last added runs first: every response gets the headers
