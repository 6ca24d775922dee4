"""The schema's execution guards: size limits, text checks and caches, per operation."""

from __future__ import annotations

from functools import partial
from typing import Any

from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)

from schema.text import StorableTextRule


def build_extensions(*, max_depth: int, max_aliases: int, max_tokens: int) -> list[Any]:
    """Extension factories (a fresh instance per operation; the caches are shared)."""
    # The limiters' rule classes are made once, here: the validation cache keys on the
    # rule classes, and a limiter built per operation makes new classes every time, so
    # every request would miss the cache and be validated again.
    rules = [
        *QueryDepthLimiter(max_depth=max_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=max_aliases).validation_rules,
        StorableTextRule,
    ]
    return [
        partial(MaxTokensLimiter, max_token_count=max_tokens),
        partial(AddValidationRules, rules),
        partial(ParserCache, maxsize=1024),
        partial(ValidationCache, maxsize=1024),
    ]
