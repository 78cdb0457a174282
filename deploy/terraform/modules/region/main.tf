# One synmon region: its run queues (one per kind, each with a DLQ), the instances that
# run five worker containers each, their IAM role, and the alarms on those queues.
locals {
  name = "${var.queue_prefix}-${var.environment}-run-${var.location}"
  kinds = toset(keys(var.check_timeout_seconds))
  # Longer than the longest check the queue serves, so a live job is never delivered twice
  # (synmon: app/pipeline/queues.py visibility_timeout).
  visibility_timeout_seconds = {
    for kind, timeout in var.check_timeout_seconds : kind => timeout + var.visibility_margin_seconds
  }
  # The stop timeout gives a running check time to finish on SIGTERM.
  stop_timeout_seconds = max(values(var.check_timeout_seconds)...) + var.visibility_margin_seconds
  tags                 = merge(var.tags, { "synmon:environment" = var.environment, "synmon:location" = var.location })
}
