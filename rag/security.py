"""Secrets never leave: one redaction for every error text shown to a user, written to a log or
returned by an API; and the rule for which addresses may be served without a password."""

from __future__ import annotations

import logging
import os
import re

from rag.config import Settings

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
MASK = "***"

_URL_USERINFO = re.compile(r"(\b[a-zA-Z][\w+.-]*://)[^/@\s]+@")
_BEARER = re.compile(r"(\bBearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_KEY_PARAMS = re.compile(
    r"((?:api[_-]?key|access[_-]?token|token|key|secret|password)\s*[=:]\s*[\"']?)[^\s\"'&,;]+",
    re.IGNORECASE,
)
_OPENAI_STYLE_KEY = re.compile(r"\bsk-[A-Za-z0-9_-]{8,}")


_SECRET_ENV = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)|^RAG_AUTH$", re.IGNORECASE)


def secrets_of(settings: Settings | None) -> list[str]:
    """The configured secret values (API keys, the page's password), and those of environment
    variables named like secrets (settings may not have loaded when an error is reported)."""
    values = [v for k, v in os.environ.items() if _SECRET_ENV.search(k) and len(v) >= 6]
    if settings is None:
        return sorted(set(values), key=len, reverse=True)
    for secret in (
        settings.llm_api_key,
        settings.embed_api_key,
        settings.judge_api_key,
        settings.api_key,
        settings.auth,
    ):
        value = secret.get_secret_value() if secret is not None else ""
        if value:
            values.append(value)
            if ":" in value:  # user:password: the password alone too
                values.append(value.split(":", 1)[1])
    return sorted(set(values), key=len, reverse=True)


def redact(text: str, settings: Settings | None = None) -> str:
    """The text without credentials: configured secrets, `Bearer …` tokens, `key=…`
    parameters, OpenAI-style keys, and user:password in URLs."""
    for value in secrets_of(settings):
        if len(value) >= 3:
            text = text.replace(value, MASK)
    text = _URL_USERINFO.sub(r"\1", text)
    text = _BEARER.sub(rf"\g<1>{MASK}", text)
    text = _KEY_PARAMS.sub(rf"\g<1>{MASK}", text)
    return _OPENAI_STYLE_KEY.sub(MASK, text)


def page_auth(settings: Settings) -> tuple[str, str] | None:
    """The page's (user, password), or None; refuses non-local addresses without one."""
    auth = settings.auth.get_secret_value() if settings.auth is not None else ""
    if auth:
        user, sep, password = auth.partition(":")
        if not (sep and user and password):
            raise ValueError("RAG_AUTH must look like user:password.")
        return user, password
    if settings.host not in LOCAL_HOSTS:
        raise ValueError(
            f"Refusing to serve on {settings.host}: the page would be reachable from other "
            "machines without a password. Set RAG_AUTH=user:password, or use "
            "RAG_HOST=127.0.0.1."
        )
    return None


class RedactingFilter(logging.Filter):
    """Redacts every log record's message before any handler writes it."""

    def __init__(self, settings: Settings | None) -> None:
        super().__init__()
        self.settings = settings

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message, self.settings)
        if record.exc_info:  # a traceback may quote a URL or a reply body
            import traceback

            cleaned += "\n" + redact("".join(traceback.format_exception(*record.exc_info)))
            record.exc_info = None
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        return True


def install_log_redaction(settings: Settings | None) -> None:
    """Every handler of the root logger redacts what it writes (handlers added later by a
    library bypass this, which is why error texts are also redacted where they are made)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter(settings))


def api_refusal(settings: Settings, authorization: str | None) -> tuple[int, str, str] | None:
    """Why a call to the OpenAI-compatible API (/v1) is refused, as (HTTP status, message,
    code), or None when it may proceed. With `api_key` set, the call must carry it as a bearer
    key. Without one the API is open only on a local address, like the page; and when the page
    has a password (`auth`) but the API has no key, the API refuses every call rather than
    serve without the page's protection."""
    import hmac

    key = settings.api_key.get_secret_value() if settings.api_key is not None else ""
    if key:
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip(), key):
            return (
                401,
                "Invalid or missing API key: send Authorization: Bearer <RAG_API_KEY>.",
                ("invalid_api_key"),
            )
        return None
    if settings.auth is not None and settings.auth.get_secret_value():
        return (
            403,
            "The API is disabled: the page has a password (RAG_AUTH) but the API has no key. "
            "Set RAG_API_KEY to use /v1.",
            "api_key_required",
        )
    if settings.host not in LOCAL_HOSTS:
        return (
            403,
            f"The API is served without a key only on 127.0.0.1, not on {settings.host}. "
            "Set RAG_API_KEY.",
            "api_key_required",
        )
    return None
