"""synmon's configuration: settings from the environment and Celery's configuration values."""

from config.settings import ConfigError, Settings, get_settings, load_settings, reset_settings

__all__ = [
    "ConfigError",
    "Settings",
    "get_settings",
    "load_settings",
    "reset_settings",
]
