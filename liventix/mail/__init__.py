"""Email: the notification outbox sent over SMTP, digests, and unsubscribe links.

- `compose`: a notification's or a digest's message (Jinja2 templates, HTML and text),
  with a stable Message-ID and RFC 8058 one-click unsubscribe headers;
- `links`: the signed unsubscribe links those headers carry (`liventix.unsubscribe`
  serves them);
- `transports`: SMTP (aiosmtplib), or the development sink of `.eml` files;
- `sender`: one tick of the sender job: claim, send, record;
- `metrics`: sent, failed and dead-lettered emails, for Prometheus.

**Delivery is at least once, not exactly once.** A row is marked `sent` in a
transaction after the SMTP server accepted the message; nothing can make those two one
atomic step. If the process dies (or the database becomes unreachable) between the
server's `250 OK` and that commit, the row's lease runs out and a sender sends the
message again. The copy carries the same `Message-ID` (`<notification.<id>@domain>`,
`<digest.<period>.<user>@domain>`), so a mail server or client that deduplicates by
Message-ID, or a person reading the headers, can tell it is the same message. The
window is one message wide: each is recorded as soon as it is accepted. A timeout after
the message's data was sent is the same case: the server may have accepted it.
"""
