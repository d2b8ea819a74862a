"""The operators' console: static files shipped in the package, served with their content types and a
Content-Security-Policy that allows nothing but this API (no external script, style, font or image)."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from ..errors import NotFound

HERE = Path(__file__).resolve().parent
# name in the URL (after /console/) → file and content type; nothing outside this table is served
ASSETS = {
    "": ("index.html", "text/html; charset=utf-8"),
    "console.js": ("console.js", "text/javascript; charset=utf-8"),
    "console.css": ("console.css", "text/css; charset=utf-8"),
}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}


@lru_cache(maxsize=None)
def _read(filename: str) -> str:
    return (HERE / filename).read_text(encoding="utf-8")


def asset(name: str) -> tuple[str, dict]:
    """(body, headers) of a console file."""
    if name not in ASSETS:
        raise NotFound(f"no console file {name!r}")
    filename, content_type = ASSETS[name]
    return _read(filename), {"Content-Type": content_type, **SECURITY_HEADERS}
