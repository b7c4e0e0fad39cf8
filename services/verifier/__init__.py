"""The schedcp verifier service."""
