"""Keeping credentials, and text of a client's choosing, out of what is
logged, shown and stored (pure).

Credentials: which header names carry one, a URL's password (in any text
that quotes the URL), the keys a request was sent with, wherever an
upstream quotes them back, and a key pasted where a variable's name goes. Client
text: names and messages cut to a length one log line can carry, whatever
the size of the body they came in, and shown on a terminal with its control
characters escaped, as they are in the log's JSON lines.
"""

from __future__ import annotations

import base64
import contextlib
import re
from collections.abc import Iterable, Mapping
from typing import overload
from urllib.parse import unquote

REDACTED = "[redacted]"

# Words of a header name (split at "-", "_" and ".") that make it a
# credential's: x-api-key, api-key, x-goog-api-key, proxy-authorization,
# cookie, x-auth-token. Whole words, so x-portkey-provider is none.
_CREDENTIAL_WORDS = frozenset(
    {
        "apikey",
        "auth",
        "authorization",
        "cookie",
        "credential",
        "credentials",
        "key",
        "password",
        "secret",
        "token",
    }
)
_WORD_BREAKS = re.compile(r"[-_.]")

# A key shorter than this is a placeholder ("ollama", "none"), no secret:
# replacing it would garble an error's own words that happen to hold it.
_SHORTEST_SECRET = 8

# Longest name a client chooses (a model, profile, tool or role) that is
# logged or stored whole; a real one is a few dozen characters.
NAME_CHARS = 256
# Longest error or detail message logged or stored for one request or attempt.
TEXT_CHARS = 1024


def is_credential_header(name: str) -> bool:
    return any(w in _CREDENTIAL_WORDS for w in _WORD_BREAKS.split(name.lower()))


def masked_url(url: str) -> str:
    """`url` with its password (or a user given alone, which may be a token)
    shown as ***: https://user:***@host/v1."""
    scheme, sep, rest = url.partition("://")
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    userinfo, at, hostport = rest[:end].rpartition("@")
    if not sep or not at:
        return url
    user, colon, _ = userinfo.partition(":")
    shown = f"{user}:***" if colon else "***"
    return f"{scheme}://{shown}@{hostport}{rest[end:]}"


# A URL's scheme and authority in free text, up to where a quote, a space
# or the path ends it: an error of ruamel, msgspec or our own may quote one.
_URL_AUTHORITY = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s/?#\"'`<>]*")


def masked_urls(text: str) -> str:
    """`text` with the password of every URL in it shown as *** (masked_url)."""
    return _URL_AUTHORITY.sub(lambda m: masked_url(m[0]), text)


# A run of letters and digits this long, holding a digit or both cases, is
# a key's: a variable's name is words (OPENROUTER_API_KEY), a key is random.
_KEY_RUN = 16
# A variable's name as it is written: upper-case words joined by "_".
_PLAIN_NAME = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*")
# What is shown of a name that may be a key: no more than a key's own prefix (gsk_).
_SHOWN_OF_KEY = 4


def looks_like_key(name: str) -> bool:
    """Whether `name`, given as an environment variable's, looks like a key
    pasted in its place (a Mistral key, gsk_..., 64 hex digits)."""
    return any(
        len(word) >= _KEY_RUN
        and (any(c.isdigit() for c in word) or (word.lower() != word != word.upper()))
        for word in name.split("_")
    )


def shown_env_name(name: str) -> str:
    """`name` (api_key_env) as logged: whole when it reads as a variable's
    name, else its first characters only, as it may be the key itself."""
    if _PLAIN_NAME.fullmatch(name) and not looks_like_key(name):
        return name
    return name[:_SHOWN_OF_KEY] + "…"


def sent_secrets(headers: Mapping[str, str], url: str) -> list[str]:
    """The credentials a request to `url` with `headers` carries, as an
    upstream might quote them back: each credential header's value (its
    token alone too, the key of `Bearer <key>`), and the URL's password
    with the basic-auth token the HTTP client makes of it."""
    found: list[str] = []
    for name, value in headers.items():
        if is_credential_header(name):
            found += [value, *value.split()[-1:]]
    userinfo, at, _ = url.partition("://")[2].partition("/")[0].rpartition("@")
    if at:
        user, colon, password = userinfo.partition(":")
        secret = password if colon else user
        found += [secret, unquote(secret), *_basic_tokens(f"{unquote(user)}:{unquote(password)}")]
    return sorted({s for s in found if len(s) >= _SHORTEST_SECRET}, key=len, reverse=True)


def _basic_tokens(plain: str) -> list[str]:
    """The basic-auth tokens `user:password` may be sent as: aiohttp encodes
    a URL's user and password as latin-1 (BasicAuth.from_url), other clients
    as UTF-8; the two differ once a character is past ASCII."""
    tokens = [base64.b64encode(plain.encode()).decode()]
    # Without latin-1 bytes for it, aiohttp cannot send it at all.
    with contextlib.suppress(UnicodeEncodeError):
        tokens.append(base64.b64encode(plain.encode("latin-1")).decode())
    return tokens


def redact(data: bytes, secrets: Iterable[str]) -> bytes:
    """`data` with each of `secrets` replaced by [redacted] (longest first,
    so a token inside a header value it was quoted with goes too)."""
    for secret in secrets:
        data = data.replace(secret.encode(), REDACTED.encode())
    return data


@overload
def clip(text: str, limit: int = NAME_CHARS) -> str: ...


@overload
def clip(text: str | None, limit: int = NAME_CHARS) -> str | None: ...


def clip(text: str | None, limit: int = NAME_CHARS) -> str | None:
    """`text` cut to `limit` characters, saying how many more there were."""
    if text is None or len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


# What a terminal or a script reading lines takes for more than a character
# of text: the C0 controls (line feed, carriage return, escape, ...), DEL, the
# C1 controls, and the line and paragraph separators str.splitlines breaks at.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape_controls(text: str) -> str:
    """`text` (of a client's or a backend's choosing) as one line of a
    command's text output: each control character written as its Python
    escape (\\n, \\x1b, \\u2028), so it can neither add a row nor move the
    terminal's cursor."""
    return _CONTROLS.sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    return match[0].encode("unicode_escape").decode("ascii")
