"""Signed outgoing webhooks: subscriptions, persisted deliveries with retries, and their dispatcher."""
