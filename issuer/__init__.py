"""authgate issuer: sign-in (Kakao, any OIDC provider, GitHub, local accounts), tokens and
sessions in Redis, the admin API, and user events through a Redis outbox to RabbitMQ."""
