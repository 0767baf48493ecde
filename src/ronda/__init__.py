"""Ronda: network and device security posture."""

__version__ = "0.1.0"
