resource "aws_security_group" "worker" {
  name_prefix = "${local.name}-worker-"
  description = "synmon workers: no inbound traffic but SSH from the bastion; outbound to the checked targets"
  vpc_id      = var.vpc_id

  ingress {
    description = "SSH from the bastion, for the readiness check"
    from_port   = 22
    to_port     = 22
    protocol    = "tcp"
    cidr_blocks = ["${var.bastion_host}/32"]
  }

  #checkov:skip=CKV_AWS_382:Synthetic monitoring reaches any public target on any port; synmon's target guard (SSRF) decides per check, not the security group.
  egress {
    description = "Targets of the checks, SQS, S3"
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }

  lifecycle {
    create_before_destroy = true
  }
  tags = local.tags
}

resource "aws_instance" "worker" {
  count                  = var.instance_count
  ami                    = var.ami_id
  instance_type          = var.instance_type
  subnet_id              = element(var.subnet_ids, count.index)
  vpc_security_group_ids = [aws_security_group.worker.id]
  iam_instance_profile   = aws_iam_instance_profile.worker.name
  ebs_optimized          = true
  monitoring             = true

  user_data_replace_on_change = true
  user_data = templatefile("${path.module}/user_data.sh.tftpl", {
    image            = var.image
    containers       = var.containers
    stop_timeout     = local.stop_timeout_seconds
    environment      = var.environment
    location         = var.location
    locations        = join(",", var.locations)
    central_region   = var.central_region
    queue_url_prefix = var.queue_url_prefix
    queue_prefix     = var.queue_prefix
    artifacts_url    = var.artifacts_url
    events_url       = var.events_url
    http_timeout     = var.check_timeout_seconds["http"]
    browser_timeout  = var.check_timeout_seconds["browser"]
    margin           = var.visibility_margin_seconds
    max_receive      = var.max_receive_count
  })

  metadata_options {
    http_endpoint = "enabled"
    http_tokens   = "required" # IMDSv2 only
  }

  root_block_device {
    encrypted   = true
    volume_size = 30
  }

  # Seed: a replaced instance serves before its predecessor is destroyed.
  lifecycle {
    create_before_destroy = true
  }

  # Seed: keep checking that the worker runs before Terraform calls the instance ready.
  # Here: every one of the five containers reports "consuming" through synmon health.
  provisioner "remote-exec" {
    inline = [
      "timeout ${var.readiness_timeout_seconds} sh -c 'until [ \"$(docker ps -q --filter label=synmon.role=worker | wc -l)\" -eq 5 ] && for c in $(docker ps -q --filter label=synmon.role=worker); do docker exec $c synmon health || exit 1; done; do sleep 5; done'",
    ]
    connection {
      type         = "ssh"
      host         = self.private_ip
      user         = var.ssh_user
      private_key  = var.ssh_private_key
      bastion_host = var.bastion_host
    }
  }

  tags = merge(local.tags, { Name = "${local.name}-worker-${count.index}" })
}
