# Control instances: beat (scheduler + dispatcher), ingest, the status page and Flower.
# Several may run: FOR UPDATE SKIP LOCKED gives each due check to one dispatcher, and
# ingest is idempotent by run id.
data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "control" {
  statement {
    sid       = "DispatchRunRequests"
    actions   = ["sqs:SendMessage", "sqs:GetQueueUrl", "sqs:GetQueueAttributes"]
    resources = var.run_queue_arns
  }
  statement {
    sid = "ConsumeResultsAndTicks"
    actions = [
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
      "sqs:ChangeMessageVisibility",
      "sqs:GetQueueAttributes",
      "sqs:GetQueueUrl",
      "sqs:SendMessage",
    ]
    resources = [for queue in aws_sqs_queue.central : queue.arn]
  }
  statement {
    sid       = "InspectAndRedriveDeadLetters"
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"]
    resources = [for queue in aws_sqs_queue.dead_letter : queue.arn]
  }
  statement {
    sid       = "ReadScreenshots"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.artifacts.arn}/*"]
  }
  statement {
    # synmon queues and /metrics read ApproximateAgeOfOldestMessage. GetMetricStatistics
    # has no resource-level permissions, so its resource can only be "*".
    sid       = "ReadQueueAges"
    actions   = ["cloudwatch:GetMetricStatistics"]
    resources = ["*"]
  }
}

resource "aws_iam_role" "control" {
  name               = "${local.name}-control"
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = local.tags
}

resource "aws_iam_role_policy" "control" {
  name   = "synmon-control"
  role   = aws_iam_role.control.id
  policy = data.aws_iam_policy_document.control.json
}

resource "aws_iam_instance_profile" "control" {
  name = "${local.name}-control"
  role = aws_iam_role.control.name
}

resource "aws_security_group" "control" {
  name_prefix = "${local.name}-control-"
  description = "synmon control instances: SSH from the bastion; status page and Flower from the VPC"
  vpc_id      = var.vpc_id

  ingress {
    description = "SSH from the bastion, for the readiness check"
    from_port   = 22
    to_port     = 22
    protocol    = "tcp"
    cidr_blocks = ["${var.bastion_host}/32"]
  }
  ingress {
    description = "Status page, JSON API and metrics, from the VPC (behind your load balancer)"
    from_port   = 8080
    to_port     = 8080
    protocol    = "tcp"
    cidr_blocks = [data.aws_vpc.selected.cidr_block]
  }
  ingress {
    description = "Flower, from the VPC"
    from_port   = 5555
    to_port     = 5555
    protocol    = "tcp"
    cidr_blocks = [data.aws_vpc.selected.cidr_block]
  }
  egress {
    description = "AWS APIs over HTTPS"
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }
  egress {
    description = "Postgres, Redis and notification targets inside the VPC"
    from_port   = 0
    to_port     = 65535
    protocol    = "tcp"
    cidr_blocks = [data.aws_vpc.selected.cidr_block]
  }
  lifecycle {
    create_before_destroy = true
  }
  tags = local.tags
}

data "aws_vpc" "selected" {
  id = var.vpc_id
}

resource "aws_instance" "control" {
  count                  = var.control_instance_count
  ami                    = var.ami_id
  instance_type          = var.instance_type
  subnet_id              = element(var.subnet_ids, count.index)
  vpc_security_group_ids = [aws_security_group.control.id]
  iam_instance_profile   = aws_iam_instance_profile.control.name
  ebs_optimized          = true
  monitoring             = true

  user_data_replace_on_change = true
  user_data = templatefile("${path.module}/user_data.sh.tftpl", {
    image             = var.image
    environment       = var.environment
    locations         = join(",", var.locations)
    region            = local.region
    queue_prefix      = var.queue_prefix
    queue_url_prefix  = local.queue_url_prefix
    database_url      = local.database_url
    artifacts_url     = local.artifacts_url
    events_url        = var.events_url
    flower_basic_auth = var.flower_basic_auth
    margin            = var.visibility_margin_seconds
  })

  metadata_options {
    http_endpoint = "enabled"
    http_tokens   = "required"
  }

  root_block_device {
    encrypted   = true
    volume_size = 20
  }

  lifecycle {
    create_before_destroy = true
  }

  provisioner "remote-exec" {
    inline = [
      "timeout 600 sh -c 'until docker exec synmon-beat synmon health && docker exec synmon-ingest synmon health; do sleep 5; done'",
    ]
    connection {
      type         = "ssh"
      host         = self.private_ip
      user         = var.ssh_user
      private_key  = var.ssh_private_key
      bastion_host = var.bastion_host
    }
  }

  tags = merge(local.tags, { Name = "${local.name}-control-${count.index}" })
}
