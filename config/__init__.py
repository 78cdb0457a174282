"""synmon's configuration: settings declared once (settings.py), Celery's configuration values
(celery.py) and the base of synmon's errors (errors.py). It imports nothing of app/."""
