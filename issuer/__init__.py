"""authgate issuer: OAuth/OIDC login, tokens and sessions (not built yet: issue 3)."""
