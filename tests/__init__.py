"""Unit, contract and end-to-end tests."""
