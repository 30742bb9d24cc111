"""Abuse tests: the holes an attacker with a customer token could use, kept closed."""
