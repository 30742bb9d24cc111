"""Telemetry every layer may use (traces); imports nothing of the service's own packages."""
