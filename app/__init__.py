"""synmon: self-hosted synthetic monitoring on Celery, SQS and Postgres."""

__version__ = "0.1.0"
