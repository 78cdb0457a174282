"""Celery configuration values: task names and the backoff of a failed job.

The configuration Celery is given is built from these and the settings in
``app/celery/config.py``.
"""

RUN_TASKS = {"http": "synmon.run_http", "browser": "synmon.run_browser"}
DISPATCH_TASK = "synmon.dispatch"
# Retention (app/pipeline/retention.py) on beat, on the dispatch queue. The dispatch
# worker runs one task at a time, so a pass stops after its budget and the next, a minute
# on, goes on: a budget under the 0.5 s tick keeps a check's start within a second of its
# slot (the dispatcher's p99 goal) while a pass runs.
PRUNE_TASK = "synmon.prune"
PRUNE_INTERVAL_SECONDS = 60.0
PRUNE_BUDGET_SECONDS = 0.4
# A job that fails (not a check that fails) becomes visible again after these many
# seconds, by receive count, until the queue's maxReceiveCount sends it to its DLQ.
JOB_BACKOFF_SECONDS = {1: 1, 2: 5, 3: 15, 4: 60, 5: 120}
