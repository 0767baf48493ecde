"""Alerts raised by rules over domain events: list, detail, acknowledge, resolve."""
