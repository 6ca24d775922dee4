"""Incoming webhooks."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response


async def stripe_webhook(request: Request) -> Response:
    return JSONResponse({"error": "payments not configured"}, status_code=503)
