"""The data layer: transactional repository functions and SQL migrations.

Every public function here is one business operation in one transaction; it takes the
`databases.Database`, opens its own connection and transaction in the calling task
(``databases`` binds connections to tasks) and never touches GraphQL.

Expected failures are raised as `DomainError` subclasses, which resolvers map to the
schema's typed errors in one place::

    DomainError(code, message, field=None, **details)
     ├── NotFound          the thing asked for does not exist (or is not visible)
     ├── NotAllowed        the viewer may not do this
     └── InvalidInput      the input breaks a rule (too long, too many, out of range)

Each feature module defines its own codes (``SOLD_OUT``, ``HOLD_EXPIRED`` ...) as
strings; the schema exposes them as per-domain enums.
"""
