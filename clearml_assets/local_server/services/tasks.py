"""``tasks.*`` endpoints."""
