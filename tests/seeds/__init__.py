"""Seed walkthroughs: a client written from either seed document works against Ronda unchanged."""
