# Seed: CloudWatch alerts on queue sizes and delays. Every run queue gets a depth and an
# age-of-oldest-message alarm; every DLQ an alarm as soon as anything lands in it.
resource "aws_cloudwatch_metric_alarm" "queue_depth" {
  for_each            = aws_sqs_queue.run
  alarm_name          = "${each.value.name}-depth"
  alarm_description   = "Workers in ${var.location} are not keeping up with ${each.key} checks."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = each.value.name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.depth_alarm_threshold
  alarm_actions       = [var.alarm_topic_arn]
  ok_actions          = [var.alarm_topic_arn]
  tags                = local.tags
}

resource "aws_cloudwatch_metric_alarm" "queue_age" {
  for_each            = aws_sqs_queue.run
  alarm_name          = "${each.value.name}-age"
  alarm_description   = "${each.key} checks in ${var.location} wait too long before a worker takes them."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateAgeOfOldestMessage"
  dimensions          = { QueueName = each.value.name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.age_alarm_seconds
  alarm_actions       = [var.alarm_topic_arn]
  ok_actions          = [var.alarm_topic_arn]
  tags                = local.tags
}

resource "aws_cloudwatch_metric_alarm" "dead_letters" {
  for_each            = aws_sqs_queue.dead_letter
  alarm_name          = "${each.value.name}-not-empty"
  alarm_description   = "Run requests of ${var.location} failed as jobs and landed in the DLQ: synmon dlq show ${each.value.name}."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = each.value.name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  alarm_actions       = [var.alarm_topic_arn]
  tags                = local.tags
}
