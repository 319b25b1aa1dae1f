"""``events.*`` endpoints."""
