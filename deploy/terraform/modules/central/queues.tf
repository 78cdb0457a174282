resource "aws_sqs_queue" "dead_letter" {
  for_each                  = local.central_queues
  name                      = "${local.name}-${each.key}-dlq"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true
  tags                      = local.tags
}

resource "aws_sqs_queue" "central" {
  for_each                   = local.central_queues
  name                       = "${local.name}-${each.key}"
  visibility_timeout_seconds = local.queue_visibility
  message_retention_seconds  = 345600
  receive_wait_time_seconds  = 20
  sqs_managed_sse_enabled    = true
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dead_letter[each.key].arn
    maxReceiveCount     = each.key == "results" ? var.results_max_receive_count : 3
  })
  tags = local.tags
}

resource "aws_sqs_queue_redrive_allow_policy" "dead_letter" {
  for_each  = local.central_queues
  queue_url = aws_sqs_queue.dead_letter[each.key].id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.central[each.key].arn]
  })
}

resource "aws_cloudwatch_metric_alarm" "queue_depth" {
  for_each            = aws_sqs_queue.central
  alarm_name          = "${each.value.name}-depth"
  alarm_description   = "The ${each.key} queue is backing up."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = each.value.name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  comparison_operator = "GreaterThanThreshold"
  threshold           = 5000
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
  tags                = local.tags
}

resource "aws_cloudwatch_metric_alarm" "queue_age" {
  for_each            = aws_sqs_queue.central
  alarm_name          = "${each.value.name}-age"
  alarm_description   = "Messages wait too long in the ${each.key} queue: is ${each.key == "results" ? "ingest" : "beat"} running?"
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateAgeOfOldestMessage"
  dimensions          = { QueueName = each.value.name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = 120
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
  tags                = local.tags
}

resource "aws_cloudwatch_metric_alarm" "dead_letters" {
  for_each            = aws_sqs_queue.dead_letter
  alarm_name          = "${each.value.name}-not-empty"
  alarm_description   = "Messages landed in ${each.value.name}: synmon dlq show ${each.value.name}."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = each.value.name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  alarm_actions       = [aws_sns_topic.alarms.arn]
  tags                = local.tags
}
