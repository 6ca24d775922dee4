"""Where messages go: an SMTP server (aiosmtplib), or a folder of `.eml` files.

`transport_for` picks: SMTP when SMTP_HOST is set; otherwise, outside production, the
sink, which writes each message to MAIL_SINK_DIR (default `.data/mail/`) as a file any
mail client opens, named after its Message-ID (a resend replaces the file). In
production without SMTP_HOST there is no transport: emails stay pending, unsent.

A failed send raises `DeliveryError`; `permanent` when retrying cannot help (the server
refused the recipient with a 5xx, or the address is malformed), else it is retried.
A 5xx to anything but the recipient (say, 554 after DATA, or 530 authentication
required) is retried too: it is as likely to be the relay's configuration as the
message, and the retries leave time to fix it.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Protocol

import aiosmtplib

from liventix.mail.compose import Outgoing
from liventix.settings import Settings


class DeliveryError(Exception):
    """The message was not accepted; `permanent`: it never will be."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Transport(Protocol):
    async def send(self, outgoing: Outgoing) -> None:
        """Hand the message over; return once it is accepted, else `DeliveryError`."""
        ...

    async def aclose(self) -> None: ...


class SmtpTransport:
    """One connection, opened at the first message and reused for the next ones (one
    batch of the sender); reopened after the server or the network dropped it."""

    def __init__(self, settings: Settings) -> None:
        assert settings.smtp_host is not None
        self.settings = settings
        self.timeout = settings.smtp_timeout_seconds
        self._client: aiosmtplib.SMTP | None = None

    def _new_client(self) -> aiosmtplib.SMTP:
        settings = self.settings
        return aiosmtplib.SMTP(
            hostname=settings.smtp_host,
            port=settings.smtp_port_in_use,
            username=settings.smtp_username,
            password=settings.smtp_password,
            use_tls=settings.smtp_tls == "tls",
            start_tls=settings.smtp_tls == "starttls",
            timeout=self.timeout,
        )

    async def send(self, outgoing: Outgoing) -> None:
        """At most SMTP_TIMEOUT_SECONDS per message, connecting included."""
        try:
            async with asyncio.timeout(self.timeout):
                if self._client is None or not self._client.is_connected:
                    self._client = self._new_client()
                    await self._client.connect()
                await self._client.sendmail(outgoing.sender, [outgoing.recipient], outgoing.data)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refusals = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)
            permanent = all(r.code >= 500 for r in exc.recipients)
            raise DeliveryError(f"recipient refused: {refusals}", permanent=permanent) from None
        except aiosmtplib.SMTPResponseException as exc:
            raise DeliveryError(f"{exc.code} {exc.message}") from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            await self._drop()  # mid-conversation: start the next message afresh
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
        except ValueError as exc:  # an address aiosmtplib will not put in an envelope
            raise DeliveryError(str(exc), permanent=True) from None

    async def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None and client.is_connected:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                client.close()


class SinkTransport:
    """Development: each message becomes `<message-id>.eml` in `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def send(self, outgoing: Outgoing) -> None:
        await asyncio.to_thread(self._write, outgoing)

    def _write(self, outgoing: Outgoing) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path_of(outgoing.message_id)
        partial = path.with_suffix(".partial")
        partial.write_bytes(outgoing.data)
        partial.replace(path)  # a reader never sees half a message

    def path_of(self, message_id: str) -> Path:
        name = re.sub(r"[^A-Za-z0-9@._-]", "_", message_id.strip("<>"))
        return self.directory / f"{name}.eml"

    async def aclose(self) -> None:
        return None


def transport_for(settings: Settings) -> Transport | None:
    """SMTP, the development sink, or None (production without SMTP_HOST)."""
    if settings.smtp_host is not None:
        return SmtpTransport(settings)
    if settings.is_production:
        return None
    return SinkTransport(settings.mail_sink_path)
