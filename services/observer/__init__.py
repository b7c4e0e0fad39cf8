"""The schedcp observer service."""
