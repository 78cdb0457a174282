"""Celery configuration values: task names and the backoff of a failed job.

The configuration Celery is given is built from these and the settings in
``app/celery/config.py``.
"""

RUN_TASKS = {"http": "synmon.run_http", "browser": "synmon.run_browser"}
DISPATCH_TASK = "synmon.dispatch"
# Retention (app/pipeline/retention.py), hourly on beat, on the dispatch queue.
PRUNE_TASK = "synmon.prune"
PRUNE_INTERVAL_SECONDS = 3600.0
# A job that fails (not a check that fails) becomes visible again after these many
# seconds, by receive count, until the queue's maxReceiveCount sends it to its DLQ.
JOB_BACKOFF_SECONDS = {1: 1, 2: 5, 3: 15, 4: 60, 5: 120}
