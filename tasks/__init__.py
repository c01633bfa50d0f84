"""Celery tasks: thin interfaces over crypto.services, like a view or a command."""
