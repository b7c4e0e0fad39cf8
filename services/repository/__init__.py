"""The schedcp repository service."""
