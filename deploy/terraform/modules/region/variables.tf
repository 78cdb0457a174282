variable "environment" {
  description = "dev, test or prod: part of every queue name (SYNMON_ENV)."
  type        = string
  validation {
    condition     = contains(["dev", "test", "prod"], var.environment)
    error_message = "environment is dev, test or prod."
  }
}

variable "location" {
  description = "The location this module serves; synmon's regional queues live in the AWS region of the same name (SYNMON_SQS_REGIONAL_QUEUES)."
  type        = string
}

variable "queue_prefix" {
  description = "SYNMON_SQS_QUEUE_PREFIX: queues are <prefix>-<environment>-run-<location>-<kind>."
  type        = string
  default     = "synmon"
}

variable "image" {
  description = "The synmon image the workers run, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/synmon:test."
  type        = string
}

variable "instance_count" {
  description = "Worker instances in this region. Each runs five worker containers."
  type        = number
  default     = 2
}

variable "instance_type" {
  description = "EC2 instance type of the workers (browser workers need about 1 GiB each)."
  type        = string
  default     = "c6i.xlarge"
}

variable "ami_id" {
  description = "An AMI with Docker installed (Amazon Linux 2023 or Debian with docker.io)."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the worker instances."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets (with a NAT route to the internet) the instances spread over."
  type        = list(string)
}

variable "containers" {
  description = "Worker containers per instance by kind; they add up to five."
  type        = map(number)
  default     = { http = 3, browser = 2 }
  validation {
    condition     = sum(values(var.containers)) == 5 && alltrue([for kind in keys(var.containers) : contains(["http", "browser"], kind)])
    error_message = "Five containers per instance, of kinds http and browser."
  }
}

variable "check_timeout_seconds" {
  description = "The longest check timeout per kind (SYNMON_HTTP_MAX_TIMEOUT, SYNMON_BROWSER_MAX_TIMEOUT)."
  type        = map(number)
  default     = { http = 30, browser = 240 }
}

variable "visibility_margin_seconds" {
  description = "SYNMON_SQS_VISIBILITY_MARGIN: a run queue's visibility timeout is its longest check plus this."
  type        = number
  default     = 15
}

variable "max_receive_count" {
  description = "SYNMON_SQS_MAX_RECEIVE_COUNT: deliveries of a run request before it moves to its DLQ."
  type        = number
  default     = 3
}

variable "results_queue_arn" {
  description = "ARN of the results queue (central module): the only queue workers may send to."
  type        = string
}

variable "central_region" {
  description = "Region of the results queue (SYNMON_SQS_REGION of the workers)."
  type        = string
}

variable "queue_url_prefix" {
  description = "SYNMON_SQS_QUEUE_URL_PREFIX, with {region} standing for each queue's region."
  type        = string
}

variable "artifacts_bucket_arn" {
  description = "ARN of the artifacts bucket (screenshots); workers may only put objects in it."
  type        = string
}

variable "artifacts_url" {
  description = "SYNMON_ARTIFACTS_URL, e.g. s3://synmon-prod-artifacts/screenshots."
  type        = string
}

variable "events_url" {
  description = "SYNMON_EVENTS_URL (Redis) for Flower; empty for none."
  type        = string
  default     = ""
  sensitive   = true
}

variable "locations" {
  description = "SYNMON_LOCATIONS of the installation (every location's name)."
  type        = list(string)
}

variable "alarm_topic_arn" {
  description = "SNS topic that CloudWatch alarms notify."
  type        = string
}

variable "depth_alarm_threshold" {
  description = "Visible messages in a run queue that mean the workers are behind."
  type        = number
  default     = 1000
}

variable "age_alarm_seconds" {
  description = "Age of the oldest message in a run queue that means runs are late."
  type        = number
  default     = 120
}

variable "ssh_user" {
  description = "User of the readiness check's SSH connection (the seed's remote-exec)."
  type        = string
  default     = "admin"
}

variable "ssh_private_key" {
  description = "Private key of that connection."
  type        = string
  sensitive   = true
}

variable "bastion_host" {
  description = "Bastion through which the readiness check reaches private instances."
  type        = string
}

variable "readiness_timeout_seconds" {
  description = "How long a new instance may take to have all five workers consuming."
  type        = number
  default     = 600
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = {}
}
