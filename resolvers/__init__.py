"""Resolvers: auth checks, input → repository call, records out. No SQL here.

A resolver takes the request's `Info` (`resolvers.context`) and plain values, and
returns `db/` records or small dataclasses of its own; it raises a domain error
(`db.errors`) or a `ClientError` (`resolvers.errors`) when it cannot serve the request.
It knows nothing of the schema's types: `schema/` wraps what it returns and maps what
it raises.
"""
