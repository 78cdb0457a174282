"""synmon's configuration: settings from the environment, Celery's configuration, queue names."""

from config.queues import KINDS, Kind, queue_name
from config.settings import ConfigError, Settings, get_settings, load_settings, reset_settings

__all__ = [
    "KINDS",
    "ConfigError",
    "Kind",
    "Settings",
    "get_settings",
    "load_settings",
    "queue_name",
    "reset_settings",
]
