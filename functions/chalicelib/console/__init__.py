"""The operators' console: static files shipped in the package, served with their content types and a
Content-Security-Policy that allows nothing but this API (no external script, style, font or image)."""
from __future__ import annotations

import re
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


# the page's address as the browser asked for it: `<prefix>/console` or `<prefix>/console/`, where the prefix
# is "" locally and the stage (or a custom domain's base path) in AWS
_PAGE_PATH = re.compile(r"((?:/[A-Za-z0-9._~-]+)*)/console/?")
_ASSET_REFS = ('href="console/console.css"', 'src="console/console.js"')


def page(request_path: str | None) -> tuple[str, dict]:
    """(body, headers) of the page at `/console` or `/console/`. index.html names its files relative to
    `/console` (`console/console.js`); asked as `/console/`, the browser resolves that under
    `/console/console/`, which nothing serves (403 in API Gateway: a blank page). So the two references are
    made absolute from the path the page was asked at; a path of another form keeps them relative."""
    body, headers = asset("")
    found = _PAGE_PATH.fullmatch(request_path or "")
    if found:
        for ref in _ASSET_REFS:
            attribute, target = ref.split('="', 1)
            body = body.replace(ref, f'{attribute}="{found.group(1)}/{target}')
    return body, headers
