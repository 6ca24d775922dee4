"""Resolvers: auth checks, input → repository call, result → schema type. No SQL here."""
