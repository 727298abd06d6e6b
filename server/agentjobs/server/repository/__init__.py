"""Persistence: the JobRepository protocol and its backends."""
