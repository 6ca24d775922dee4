"""Liventix API: the application shell (ASGI app, settings, auth, CLI, jobs, realtime)."""
