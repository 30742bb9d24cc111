"""tests/unit/upcasting."""
