"""rag/security.py: which addresses may be served without a password, and the one redaction of
secrets for every text a user sees, a log keeps or an API returns."""

from __future__ import annotations

import pytest

from rag.config import Settings
from rag.security import LOCAL_HOSTS, page_auth, redact


@pytest.fixture(autouse=True)
def _no_secrets_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RAG_AUTH", "RAG_API_KEY", "RAG_LLM_API_KEY", "RAG_EMBED_API_KEY"):
        monkeypatch.delenv(name, raising=False)


# ---------------------------------------------------------------- binding


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "example.org"])
def test_public_bind_without_auth_is_refused(host: str) -> None:
    with pytest.raises(ValueError, match="RAG_AUTH"):
        page_auth(Settings(host=host))


@pytest.mark.parametrize("host", sorted(LOCAL_HOSTS))
def test_local_bind_needs_no_auth(host: str) -> None:
    assert page_auth(Settings(host=host)) is None


def test_public_bind_with_auth_passes_it_to_gradio() -> None:
    assert page_auth(Settings(host="0.0.0.0", auth="ann:s3:cret")) == ("ann", "s3:cret")


@pytest.mark.parametrize("auth", ["nocolon", ":pw", "user:"])
def test_malformed_auth_is_refused(auth: str) -> None:
    with pytest.raises(ValueError, match="user:password"):
        page_auth(Settings(host="0.0.0.0", auth=auth))


# ---------------------------------------------------------------- redaction


def test_configured_secrets_are_masked_wherever_they_appear() -> None:
    settings = Settings(
        llm_api_key="llm-secret",
        embed_api_key="embed-secret",
        judge_api_key="judge-secret",
        api_key="page-api-secret",
        auth="ann:hunter2!",
    )
    text = "llm-secret embed-secret judge-secret page-api-secret ann:hunter2! and hunter2! alone"
    redacted = redact(text, settings)
    for secret in ("llm-secret", "embed-secret", "judge-secret", "page-api-secret", "hunter2!"):
        assert secret not in redacted
    assert redacted.count("***") == 6 and redacted.endswith("and *** alone")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("GET http://bob:pw@llm:8080/v1 failed", "GET http://llm:8080/v1 failed"),
        ("Authorization: Bearer abc.DEF-123_x", "Authorization: Bearer ***"),
        ("https://api.example/v1?api_key=abc123&x=1", "https://api.example/v1?api_key=***&x=1"),
        ("token=xyz, secret: 'hush'", "token=***, secret: '***'"),
        ("key sk-proj-abcdefgh1234 leaked", "key *** leaked"),
        ("nothing to hide here", "nothing to hide here"),
    ],
)
def test_credentials_in_urls_headers_and_parameters_are_masked(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_short_or_absent_secrets_do_not_blank_the_text() -> None:
    assert redact("a b c", Settings(llm_api_key="a")) == "a b c"  # too short to mask safely
    assert redact("plain text", None) == "plain text"
