"""The schedcp learner service."""
