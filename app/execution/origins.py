"""What a browser calls an origin: scheme, host and port. Credentials stay with theirs."""

from __future__ import annotations

from urllib.parse import urlsplit

Origin = tuple[str, str, int]
DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> Origin | None:
    """The origin of an http(s) URL; None for anything else (no origin is the same)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:  # not a port at all
        return None
    return scheme, parts.hostname.lower(), port


def same_origin(first: str, second: str) -> bool:
    origin = origin_of(first)
    return origin is not None and origin == origin_of(second)
