# What a synmon installation has once: the results and dispatch queues (with DLQs), the
# artifacts bucket, Postgres, the alarm topic, and the control instances that run beat
# (scheduler and dispatcher), ingest, the status page and Flower.
locals {
  name                = "${var.queue_prefix}-${var.environment}"
  queue_visibility    = var.visibility_margin_seconds * 2 # synmon: app/pipeline/queues.py visibility_timeout
  region              = data.aws_region.current.name
  database_url        = "postgresql://synmon:${var.db_password}@${aws_db_instance.synmon.address}:5432/synmon"
  queue_url_prefix    = "https://sqs.{region}.amazonaws.com/${data.aws_caller_identity.current.account_id}/"
  artifacts_url       = "s3://${aws_s3_bucket.artifacts.bucket}/screenshots"
  central_queues      = toset(["results", "dispatch"])
  tags                = merge(var.tags, { "synmon:environment" = var.environment })
}

data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

resource "aws_sns_topic" "alarms" {
  name              = "${local.name}-alarms"
  kms_master_key_id = var.kms_key_arn
  tags              = local.tags
}
