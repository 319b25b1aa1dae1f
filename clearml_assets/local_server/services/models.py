"""``models.*`` endpoints."""
