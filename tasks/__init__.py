"""Celery tasks: thin wrappers that decode a message, call ``app``, and encode the result."""
