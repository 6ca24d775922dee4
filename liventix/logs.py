"""How every `liventix` process logs: JSON lines in production, readable lines in
development, and no secret or contact data in either.

The code logs through the standard library (`logging.getLogger(...)`, fields passed as
``extra=``), and so do uvicorn and the libraries. One handler on the root logger renders
every record with structlog's `ProcessorFormatter`, so all of them come out in one
format: `configure` installs it for the CLI commands, and `uvicorn_options` hands the
same configuration to uvicorn, which applies it in the server and in each worker.

LOG_FORMAT chooses the format (`Settings.log_format_in_use`):

- ``json``: one object per line with ``timestamp`` (UTC), ``level``, ``logger``,
  ``message``, ``pid`` and the record's fields (``request_id``, ``status``, ...), and
  ``exception`` for a stack trace;
- ``text``: structlog's console lines, the fields as ``key=value`` after the message;
- ``auto`` (the default): ``json`` when ENVIRONMENT=production, else ``text``.

What must never be logged (tokens, contact data, Stripe secrets) is kept out where it
would enter: the request log records no headers, query string or variables, and
Stripe's library, whose DEBUG lines are its request and response bodies, never logs
below INFO. `redact`
is the safety net under that, for what an exception message or a library lets
through: it runs on every record, in both formats, after the stack trace has been
turned into text, and replaces

- the value of any field whose name says it is sensitive (`is_sensitive_key`:
  authorization, token, secret, password, signature, email, phone, name, contact,
  variables, ...), whatever the value;
- in every other text: bearer credentials, JWTs (API and unsubscribe tokens), email
  addresses (also URL-encoded), international phone numbers, Stripe secrets
  (``whsec_``, ``sk_``/``rk_`` keys, ``pi_..._secret_...`` client secrets, ``v1=``
  signatures), the password of a URL, and 32-character mixed-case URL-safe strings
  (the shape of a ticket's QR token).
"""

from __future__ import annotations

import logging
import logging.config
import re
import sys
from collections.abc import Mapping
from typing import Any, Literal, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from liventix.settings import Settings

REDACTED = "[redacted]"

# (pattern, replacement), applied in this order to every string of a record.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # `Authorization: Bearer <token>` as a header value or in a message.
    (re.compile(r"(?i)\b(bearer)(\s+)[\w.~+/=-]+"), rf"\1\2{REDACTED}"),
    # JWTs: a header always starts with `{"` in base64url, eyJ.
    (re.compile(r"\beyJ[\w-]*\.[\w-]+\.[\w-]*"), REDACTED),
    # Stripe: webhook signing secrets, secret and restricted keys, client secrets of
    # payment and setup intents, and the signatures of a `Stripe-Signature` header.
    (re.compile(r"\bwhsec_\w+"), REDACTED),
    (re.compile(r"\b[sr]k_(?:live|test)_\w+"), REDACTED),
    (re.compile(r"\b(?:pi|seti)_\w*?_secret_\w+"), REDACTED),
    (re.compile(r"\bv[01]=[0-9a-fA-F]{32,}"), REDACTED),
    # The password of a URL (a DATABASE_URL or REDIS_URL in an error message); before
    # the email pattern, which would take `password@host.tld` for an address.
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/@]+:)[^\s/@]+@"), rf"\1{REDACTED}@"),
    # An email address, also URL-encoded (`%40`, as in a form body).
    (re.compile(r"[\w.+%-]+(?:@|%40)[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"), REDACTED),
    (re.compile(r"(?<![\w+])\+\d[\d ().-]{6,}\d"), REDACTED),
    # A ticket's QR token is `secrets.token_urlsafe(24)`: 32 URL-safe characters, upper
    # and lower case mixed (a request id or a UUID's hex is lower case only; a global
    # id is base64, longer, and bounded by other characters).
    (
        re.compile(
            r"(?<![\w+/=-])(?=[\w-]{0,31}[a-z])(?=[\w-]{0,31}[A-Z])[\w-]{32}(?![\w+/=-])",
            re.ASCII,
        ),
        REDACTED,
    ),
)

_SENSITIVE_PARTS = (
    "authorization",
    "cookie",
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "api_key",
    "signature",
    "email",
    "phone",
    "qr",
)
_SENSITIVE_KEYS = frozenset(
    {
        "name",
        "first_name",
        "last_name",
        "full_name",
        "display_name",
        "contact",
        "address",
        "headers",
        "variables",
        "payload",
        "connection_params",
    }
)
# Fields the request log builds from values already checked (a GraphQL name, a UUID,
# an alphanumeric request id): left as they are, so a 32-character request id a client
# chose is not mistaken for a QR token.
_TRUSTED_KEYS = frozenset(
    {"request_id", "operation", "operation_type", "viewer_id", "method", "outcome"}
)
# Added by structlog itself, or by uvicorn for its own colored console.
_DROPPED_KEYS = ("color_message",)
_MAX_DEPTH = 6


def is_sensitive_key(key: str) -> bool:
    """Whether a field named `key` may hold a secret or contact data, whatever its value."""
    name = key.lower().replace("-", "_")
    return name in _SENSITIVE_KEYS or any(part in name for part in _SENSITIVE_PARTS)


def scrub(text: str) -> str:
    """`text` with every secret-looking part replaced by ``[redacted]``."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _clean(value: object, depth: int = 0) -> object:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return scrub(value)
    if depth >= _MAX_DEPTH:
        return REDACTED
    if isinstance(value, Mapping):
        return {
            str(k): REDACTED if is_sensitive_key(str(k)) else _clean(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(item, depth + 1) for item in value]
    # An exception, a UUID, a dataclass...: its text, scrubbed (the renderers would
    # otherwise print its repr, unscrubbed).
    return scrub(str(value))


def redact(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """The structlog processor that scrubs a record (see the module docstring)."""
    for key in _DROPPED_KEYS:
        event_dict.pop(key, None)
    for key, value in event_dict.items():
        if key in _TRUSTED_KEYS:
            continue
        if is_sensitive_key(key) and value is not None:
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _clean(value)
    return event_dict


def _add_pid(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """The worker's process id: with ``--workers N`` the lines of N processes mix."""
    record = event_dict.get("_record")
    if isinstance(record, logging.LogRecord):
        event_dict["pid"] = record.process
    return event_dict


_LEADING_KEYS = ("timestamp", "level", "logger", "message")


def _leading_keys_first(
    logger: WrappedLogger, method_name: str, event_dict: EventDict
) -> EventDict:
    """The same fields, the ones every line has first: easier to read in a terminal."""
    lead = {key: event_dict.pop(key) for key in _LEADING_KEYS if key in event_dict}
    return {**lead, **event_dict}


def formatter(log_format: Literal["json", "text"] = "json") -> logging.Formatter:
    """The formatter of every record, in `log_format` (a factory `logging.config`
    calls, by name, in each uvicorn worker)."""
    pre_chain: list[Processor] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    common: list[Processor] = [
        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
        # The stack trace as text first, so that `redact` sees it too.
        structlog.processors.format_exc_info,
        redact,
    ]
    renderer: list[Processor]
    if log_format == "json":
        pre_chain.append(_add_pid)
        renderer = [
            structlog.processors.EventRenamer("message"),
            _leading_keys_first,
            structlog.processors.JSONRenderer(default=str),
        ]
    else:
        renderer = [structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())]
    return structlog.stdlib.ProcessorFormatter(
        processors=[*common, *renderer], foreign_pre_chain=pre_chain
    )


class StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever `sys.stderr` is when a record comes, not to the one there was
    at configuration: a test harness (or a daemonizer) may replace it meanwhile."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass  # always sys.stderr


def logging_config(settings: Settings) -> dict[str, Any]:
    """The `logging.config.dictConfig` configuration for these settings: one stderr
    handler on the root logger (stdout stays for what commands print, such as the SDL
    or a token), uvicorn's loggers sent to it."""
    level = settings.log_level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "liventix": {"()": f"{__name__}.formatter", "log_format": settings.log_format_in_use}
        },
        "handlers": {"stderr": {"class": f"{__name__}.StderrHandler", "formatter": "liventix"}},
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            **{
                name: {"level": level, "handlers": [], "propagate": True}
                for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
            },
            # Stripe's library logs request and response bodies at DEBUG: the buyer's
            # email, the client secret. Never below INFO, whatever LOG_LEVEL says.
            "stripe": {"level": "INFO" if level == "DEBUG" else level},
        },
    }


def configure(settings: Settings, *, force: bool = False) -> None:
    """Log as the settings say, for the whole process (the CLI calls this first).

    Like `logging.basicConfig`, it leaves alone a root logger that already has handlers
    (a host that set logging up, such as a test runner calling the CLI in-process),
    unless `force`."""
    if logging.getLogger().handlers and not force:
        return
    logging.config.dictConfig(logging_config(settings))


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """`uvicorn.run` options that log like the rest of the process. Uvicorn's access log
    is off: it would write each request's query string (an unsubscribe link's token, a
    GET's variables) and knows no request id; `liventix.request_log` writes one line
    per request instead."""
    return {
        "log_config": logging_config(settings),
        "log_level": settings.log_level,
        "access_log": False,
    }
