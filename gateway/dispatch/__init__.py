"""Dispatch: a persistent outbox of event notifications, delivered as Standard Webhooks."""
