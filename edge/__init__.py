"""Device agent: sources -> analyzers -> outbox -> publisher."""
