"""Who is calling: API keys → an opaque owner id, and keeping keys out of logs.

Keys come in `Authorization: Bearer KEY` (also `x-api-key` and `api-key`, which Anthropic- and
Azure-style clients send). With a master key or virtual keys configured, any other key gets 401.
With none configured the proxy is open (the embedded default), but responses are still scoped to
the key presented, or to "anonymous" without one.

The owner passed to the background service is HMAC-SHA256(secret, key), never the key: the store
(Redis) holds no usable credential. The secret is `polystream.owner_secret` if configured, else
derived from the master key, else a fixed constant (so every proxy and worker sharing one Redis
computes the same owner for the same key; the keys themselves carry the entropy).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .config import ProxyConfig, VirtualKey
from .errors import ProxyError

__all__ = ["Authenticator", "Principal", "RedactingFilter", "install_redaction", "redact", "register_secrets"]

_DEFAULT_SECRET = b"polystream-owner-v1"
_BEARER = re.compile(r"^\s*bearer\s+(\S+)\s*$", re.I)


@dataclass(frozen=True)
class Principal:
    owner: str  # opaque; what the service scopes responses by
    name: str  # for logs: the key's configured name, "master", "open" or "anonymous"
    models: frozenset[str] | None = None  # allowed model names (None: all)

    def may_use(self, model: str) -> bool:
        return self.models is None or model in self.models

    def check_model(self, model: str) -> None:
        if not self.may_use(model):
            raise ProxyError(403, f"This key may not use model `{model}`.", "permission_error", "model",
                             "model_not_allowed")


class Authenticator:
    def __init__(self, master_key: str | None, keys: Iterable[VirtualKey] = (), secret: str | None = None) -> None:
        if secret:
            self._secret = secret.encode()
        elif master_key:
            self._secret = hmac.new(master_key.encode(), b"polystream-owner", hashlib.sha256).digest()
        else:
            self._secret = _DEFAULT_SECRET
        # Looked up by owner id (a keyed hash), so the lookup itself leaks nothing about keys.
        self._known: dict[str, Principal] = {}
        if master_key:
            owner = self.owner_of(master_key)
            self._known[owner] = Principal(owner, "master")
        for k in keys:
            owner = self.owner_of(k.key)
            self._known[owner] = Principal(owner, k.name or "virtual-key", k.models)
        self.open = not self._known
        register_secrets([master_key or "", secret or "", *(k.key for k in keys)])

    @classmethod
    def from_config(cls, cfg: ProxyConfig) -> Authenticator:
        register_secrets(cfg.secrets())
        return cls(cfg.master_key, cfg.keys, cfg.owner_secret)

    def peer_secret(self) -> bytes:
        """What proxies sign routed reads under (background/peers.py derives its key from it):
        the owner secret, which every proxy on one store must share anyway."""
        return self._secret

    def owner_of(self, key: str) -> str:
        return hmac.new(self._secret, key.encode(), hashlib.sha256).hexdigest()[:40]

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        """`headers`: lower-case names (Starlette's Headers). Raises ProxyError(401)."""
        key = presented_key(headers)
        if self.open:
            return Principal(self.owner_of(key or "anonymous"), "open" if key else "anonymous")
        if not key:
            raise ProxyError(401, "Missing API key: send `Authorization: Bearer <key>`.",
                             "authentication_error", None, "missing_api_key")
        principal = self._known.get(self.owner_of(key))
        if principal is None:
            raise ProxyError(401, "Incorrect API key provided.", "authentication_error", None, "invalid_api_key")
        return principal


def presented_key(headers: Mapping[str, str]) -> str | None:
    value = headers.get("authorization")
    if value:
        m = _BEARER.match(value)
        return m.group(1) if m else value.strip() or None
    return headers.get("x-api-key") or headers.get("api-key") or None


# ---------------------------------------------------------------- redaction

_secrets: set[str] = set()
# Shapes of credentials worth hiding even when not configured here (upstream keys in URLs too).
_PATTERNS = re.compile(
    r"(?i)(bearer\s+)\S+|\b(sk-[A-Za-z0-9_\-]{6,})|([?&](?:key|api[_-]?key)=)[^&\s\"']+"
)


def register_secrets(values: Iterable[str]) -> None:
    """Add strings that must never appear in logs (keys from the config)."""
    for v in values:
        if v and len(v) >= 4:
            _secrets.add(v)


# Text the pattern cannot match without, case-folded as the pattern's (?i) folds: most log lines
# (every access line) have none, and three substring scans cost far less than the regex trying
# its alternatives at each position.
_ANCHORS = ("bearer", "sk-", "key=")


def redact(text: str) -> str:
    for s in _secrets:
        if s in text:
            text = text.replace(s, "[REDACTED]")
    folded = text.casefold()
    if not any(a in folded for a in _ANCHORS):
        return text
    return _PATTERNS.sub(lambda m: (m.group(1) or m.group(3) or "") + "[REDACTED]", text)


class RedactingFilter(logging.Filter):
    """Masks every known secret and key-shaped token in a record: the format string and each
    argument separately, so formatters that read `record.args` (uvicorn's access log) still work."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to logging's own error path
            return True
        if redact(message) != message:
            # Arguments first, each on its own, so formatters that read record.args by position
            # (uvicorn's access log) keep working; if the secret is split across the format
            # string and an argument ("Bearer %s"), fall back to the whole message, redacted.
            if isinstance(record.args, tuple):
                record.args = tuple(_clean(a) for a in record.args)
            elif isinstance(record.args, Mapping):
                record.args = {k: _clean(v) for k, v in record.args.items()}
            try:
                again = record.getMessage()
            except Exception:
                again = message
            if redact(again) != again:
                record.msg, record.args = redact(again), None
        if record.exc_info and not record.exc_text:
            # Tracebacks carry exception messages (URLs, headers): format now, redacted.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def _clean(value: object) -> object:
    if isinstance(value, (int, float)) or value is None:
        return value  # keep %d / %f formats working
    text = str(value)
    clean = redact(text)
    return value if clean == text else clean


_FILTER = RedactingFilter()


def install_redaction(loggers: Iterable[str] = ("", "uvicorn", "uvicorn.error", "uvicorn.access", "polystream")) -> None:
    """Attach the filter to those loggers and to every handler they have now. (A logger's own
    filters do not see records propagated from its children; handlers see everything.)"""
    for name in loggers:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
        for handler in logger.handlers:
            if _FILTER not in handler.filters:
                handler.addFilter(_FILTER)
