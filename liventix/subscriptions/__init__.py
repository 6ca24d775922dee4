"""Shared GraphQL subscription executions (for `liventix.ws`).

Identical subscriptions (same document, variables and permission scope) run as one
execution whose serialized results every member receives: `sharing` decides which
operations may share and how a newcomer joins, `multiplex` runs the groups. The pub/sub
underneath (`liventix.realtime`) knows nothing of GraphQL.
"""
