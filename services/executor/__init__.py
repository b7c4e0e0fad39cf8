"""The schedcp executor service."""
