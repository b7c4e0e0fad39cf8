"""The schedcp planner service."""
