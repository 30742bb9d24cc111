"""Example programs around the orders service; not part of the orders package."""
