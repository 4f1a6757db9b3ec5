"""Logging for every mailslot process, with secrets redacted from every record.

Why: aiohttp's HTTP parser refuses a header line over 8190 bytes with `LineTooLong`, whose
message quotes the line's first 100 bytes, and its server logs that exception with its traceback
at ERROR on `aiohttp.server` ("Error handling request from …"). An over-long `Authorization`
header therefore wrote `Bearer msk_…` (a live API key) into the log. The same holds for any
parser error that quotes a header (`InvalidHeader`, a bad status line). No client may be able to
put a secret in our logs, so every record is redacted before any handler writes it: a filter on
aiohttp's and asyncio's loggers (which acts before propagation) and on the root logger's handlers
(which catches everything else, mailslot's own records included).
"""

from __future__ import annotations

import logging
import re

__all__ = ["REDACTED", "RedactSecrets", "configure_logging", "install_redaction", "redact"]

REDACTED = "[redacted]"

# Loggers whose records may quote what a client sent (headers, request lines, bodies).
_CLIENT_FACING_LOGGERS = (
    "aiohttp.access",
    "aiohttp.client",
    "aiohttp.internal",
    "aiohttp.server",
    "aiohttp.web",
    "aiohttp.websocket",
    "asyncio",
)

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # `Authorization: …`, `'Cookie': '…'`, `x-api-key=…`: the whole value, whatever its scheme.
    (re.compile(r"(?i)\b((?:proxy-)?authorization|cookie|set-cookie|x-api-key)"
                r"(['\"]?\s*[:=,]\s*['\"]?)[^'\"\r\n]*"), r"\1\2" + REDACTED),
    # `Bearer …` / `Basic …` wherever it appears (aiohttp quotes the value without the name).
    (re.compile(r"(?i)\b(bearer|basic)(\s+)[^\s'\"]+"), r"\1\2" + REDACTED),
    # A workspace API key, even cut short or without its scheme.
    (re.compile(r"msk_[A-Za-z0-9_\-]*"), "msk_" + REDACTED),
    # A signed token (JWT-shaped: header.payload[.signature]).
    (re.compile(r"\beyJ[A-Za-z0-9_\-]*\.[A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]*)?"), REDACTED),
    # A password in a database URL.
    (re.compile(r"(?i)\b(postgres(?:ql)?://[^:/@\s]*:)[^@\s]+@"), r"\1" + REDACTED + "@"),
    # Identity secrets and user hashes are 64 hex digits; any long hex run may be a secret.
    (re.compile(r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{32,}(?![0-9A-Fa-f])"), REDACTED),
)


def redact(text: str) -> str:
    """`text` with every API key, identity secret, bearer value and credential header value replaced."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactSecrets(logging.Filter):
    """Rewrites a record in place so no handler can write a secret: message, traceback and stack.

    The traceback is rendered here and the exception dropped from the record, because a
    formatter renders `exc_info` itself (the exception's message is where aiohttp quotes the
    header) and would bring the secret back.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: let logging report it as it always does
            return True
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and record.exc_info[0] is not None:
            text = record.exc_text or _TRACEBACKS.formatException(record.exc_info)
            record.exc_info, record.exc_text = None, redact(text)
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_TRACEBACKS = logging.Formatter()
_FILTER = RedactSecrets()


def install_redaction() -> None:
    """Put the redacting filter on the client-facing loggers and on every handler of the root logger.

    Idempotent; call it after the handlers are configured.
    """
    for name in _CLIENT_FACING_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    for handler in logging.getLogger().handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)


def configure_logging(level: str, fmt: str) -> None:
    """`logging.basicConfig`, then redaction: the one logging set-up of the CLI and of each worker."""
    logging.basicConfig(level=level, format=fmt)
    install_redaction()
