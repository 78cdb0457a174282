output "run_queue_urls" {
  description = "URL of each run queue, by kind."
  value       = { for kind, queue in aws_sqs_queue.run : kind => queue.url }
}

output "run_queue_arns" {
  description = "ARN of each run queue, by kind (the central module's dispatcher sends to them)."
  value       = { for kind, queue in aws_sqs_queue.run : kind => queue.arn }
}

output "dead_letter_queue_arns" {
  description = "ARN of each run queue's DLQ, by kind."
  value       = { for kind, queue in aws_sqs_queue.dead_letter : kind => queue.arn }
}

output "worker_instance_ids" {
  description = "Worker instances (each replaced create-before-destroy on a rollout)."
  value       = aws_instance.worker[*].id
}

output "worker_role_arn" {
  description = "IAM role of the workers."
  value       = aws_iam_role.worker.arn
}
