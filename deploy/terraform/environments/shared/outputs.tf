# Shared by every environment (each links to this file).
output "alarm_topic_arn" {
  description = "Subscribe the pager to this topic."
  value       = module.central.alarm_topic_arn
}

output "database_address" {
  description = "The Postgres host (private)."
  value       = module.central.database_address
}
