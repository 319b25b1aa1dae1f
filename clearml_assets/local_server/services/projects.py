"""``projects.*`` endpoints."""
