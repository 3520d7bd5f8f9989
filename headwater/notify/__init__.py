"""Notifications: in-app messages, channels (apprise URLs), alert rules, fired alerts and
the delivery outbox. The tables live here, below every package, because the Dagster
daemon (orchestration) raises alerts and the API reads and edits them."""
