output "results_queue_arn" {
  description = "ARN of the results queue (workers of every region send here)."
  value       = aws_sqs_queue.central["results"].arn
}

output "results_queue_url" {
  description = "URL of the results queue."
  value       = aws_sqs_queue.central["results"].url
}

output "queue_url_prefix" {
  description = "SYNMON_SQS_QUEUE_URL_PREFIX for every synmon process ({region} is each queue's region)."
  value       = local.queue_url_prefix
}

output "region" {
  description = "The central region (SYNMON_SQS_REGION)."
  value       = local.region
}

output "artifacts_bucket_arn" {
  description = "ARN of the screenshot bucket."
  value       = aws_s3_bucket.artifacts.arn
}

output "artifacts_url" {
  description = "SYNMON_ARTIFACTS_URL."
  value       = local.artifacts_url
}

output "alarm_topic_arn" {
  description = "SNS topic of every synmon alarm; subscribe your pager to it."
  value       = aws_sns_topic.alarms.arn
}

output "database_address" {
  description = "Host name of the Postgres database."
  value       = aws_db_instance.synmon.address
}

output "control_instance_ids" {
  description = "Control instances (beat, ingest, web, Flower)."
  value       = aws_instance.control[*].id
}
