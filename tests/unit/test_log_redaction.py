"""No secret a client sends reaches a log: the redacting filter of gateway/logs.py.

The acceptance test (tests/acceptance/test_log_secrets.py) sends the over-long header to a real
`mailslot serve`; these check the filter on its own, with the exception aiohttp really raises.
"""

from __future__ import annotations

import io
import logging
import secrets
from collections.abc import Iterator

import pytest
from aiohttp.http_exceptions import InvalidHeader, LineTooLong

from gateway.logs import REDACTED, RedactSecrets, install_redaction, redact

API_KEY = "msk_" + secrets.token_urlsafe(32)
IDENTITY_SECRET = secrets.token_hex(32)


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger whose one handler formats like `mailslot serve`, with the filter on the handler."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets())
    logger = logging.getLogger(f"test.redaction.{secrets.token_hex(4)}")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    try:
        yield logger, out
    finally:
        logger.removeHandler(handler)


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"b'Bearer {API_KEY}'", API_KEY),
        (f"Authorization: Bearer {API_KEY}", API_KEY),
        (f"{{'Authorization': 'Bearer {API_KEY}'}}", API_KEY),
        (f"authorization={API_KEY}", API_KEY),
        (f"key {API_KEY}!", API_KEY),
        (f"cut short: {API_KEY[:20]}", API_KEY[:20]),
        (f"Basic {API_KEY}", API_KEY),
        (f"secret {IDENTITY_SECRET}.", IDENTITY_SECRET),
        (f"user_hash={IDENTITY_SECRET.upper()}", IDENTITY_SECRET.upper()),
        ("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZGEifQ.c2lnbmF0dXJl end", "eyJzdWIiOiJhZGEifQ"),
        ("postgresql://mailslot:s3cr3t-pass@127.0.0.1:5432/mailslot", "s3cr3t-pass"),
        ("Cookie: session=abc123def", "abc123def"),
    ],
)
def test_redact_removes_the_secret(text: str, secret: str) -> None:
    redacted = redact(text)
    assert secret not in redacted
    assert REDACTED in redacted


@pytest.mark.parametrize(
    "text",
    [
        "serving on http://127.0.0.1:8080",
        "worker 1234 exited with 1; restarting in 0.5 s",
        "message 0b9f7c2e-4a4e-4f7e-9a43-1f0c9c1c2d3e recalled",  # a UUID is no secret
        "site_AbCdEf123456 polled",
        "Bearer",  # the word alone
    ],
)
def test_redact_leaves_ordinary_text_alone(text: str) -> None:
    assert redact(text) == text


def test_the_line_aiohttp_logs_for_an_over_long_header_is_redacted(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = captured
    value = f"Bearer {API_KEY}".encode() + b"x" * 10_000
    # What aiohttp's parser raises (aiohttp/_http_parser.pyx cb_on_header_value), logged the way
    # aiohttp's RequestHandler.handle_error does it: logger.exception with exc_info.
    error = LineTooLong(value[:100] + b"...", 8190)
    assert API_KEY in str(error), "the premise: aiohttp quotes the header value"
    logger.error("Error handling request from %s", "127.0.0.1", exc_info=error)
    logged = out.getvalue()
    assert API_KEY not in logged
    assert API_KEY[:12] not in logged
    assert "Error handling request from 127.0.0.1" in logged
    assert "LineTooLong" in logged and REDACTED in logged, logged


def test_a_raised_exception_s_traceback_is_redacted(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, out = captured
    try:
        raise InvalidHeader(f"X-Secret: {IDENTITY_SECRET}".encode())
    except InvalidHeader:
        logger.exception("bad header")
    logged = out.getvalue()
    assert IDENTITY_SECRET not in logged
    assert "Traceback" in logged and "InvalidHeader" in logged


def test_arguments_are_redacted_and_plain_records_keep_their_arguments(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = captured
    logger.warning("key %s from %s", API_KEY, "127.0.0.1")
    logger.info("applied %d migrations", 3)
    lines = out.getvalue().splitlines()
    assert lines[0].endswith(f"key msk_{REDACTED} from 127.0.0.1"), lines
    assert lines[1].endswith("applied 3 migrations"), lines


def test_install_redaction_covers_aiohttp_loggers_and_root_handlers_once() -> None:
    root = logging.getLogger()
    handler = logging.StreamHandler(io.StringIO())
    root.addHandler(handler)
    try:
        install_redaction()
        install_redaction()
        for name in ("aiohttp.server", "aiohttp.access", "aiohttp.web"):
            assert sum(isinstance(f, RedactSecrets) for f in logging.getLogger(name).filters) == 1, name
        assert sum(isinstance(f, RedactSecrets) for f in handler.filters) == 1
    finally:
        root.removeHandler(handler)
