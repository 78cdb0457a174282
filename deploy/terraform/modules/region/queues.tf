resource "aws_sqs_queue" "dead_letter" {
  for_each                  = local.kinds
  name                      = "${local.name}-${each.key}-dlq"
  message_retention_seconds = 1209600 # 14 days to look, replay or drop (synmon dlq)
  sqs_managed_sse_enabled   = true
  tags                      = local.tags
}

resource "aws_sqs_queue" "run" {
  for_each                   = local.kinds
  name                       = "${local.name}-${each.key}"
  visibility_timeout_seconds = local.visibility_timeout_seconds[each.key]
  message_retention_seconds  = 345600 # 4 days
  receive_wait_time_seconds  = 20     # long polling by default
  sqs_managed_sse_enabled    = true
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dead_letter[each.key].arn
    maxReceiveCount     = var.max_receive_count
  })
  tags = local.tags
}

resource "aws_sqs_queue_redrive_allow_policy" "dead_letter" {
  for_each  = local.kinds
  queue_url = aws_sqs_queue.dead_letter[each.key].id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.run[each.key].arn]
  })
}
