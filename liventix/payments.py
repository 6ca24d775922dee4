"""Payment gateways: Stripe through the real `stripe` library, or a local stand-in."""

from __future__ import annotations

from typing import Any

from liventix.settings import Settings

PaymentGateway = Any


def gateway_for(settings: Settings) -> PaymentGateway | None:
    return None
