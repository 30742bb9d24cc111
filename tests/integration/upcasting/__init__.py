"""Upcasting: legacy events read in today's shape on every read path."""
