"""Versioned reference data (ISO code lists, card-network retry rules), kept as data."""
