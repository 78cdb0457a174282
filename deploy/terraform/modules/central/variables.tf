variable "environment" {
  description = "dev, test or prod (SYNMON_ENV)."
  type        = string
  validation {
    condition     = contains(["dev", "test", "prod"], var.environment)
    error_message = "environment is dev, test or prod."
  }
}

variable "queue_prefix" {
  description = "SYNMON_SQS_QUEUE_PREFIX."
  type        = string
  default     = "synmon"
}

variable "locations" {
  description = "Every location (AWS region) that has a region module; the dispatcher sends to their run queues."
  type        = list(string)
}

variable "run_queue_arns" {
  description = "ARNs of every region's run queues (outputs of the region modules)."
  type        = list(string)
  default     = []
}

variable "image" {
  description = "The synmon image beat, ingest, web and Flower run."
  type        = string
}

variable "ami_id" {
  description = "An AMI with Docker installed."
  type        = string
}

variable "instance_type" {
  description = "Instance type of the control instances (beat, ingest, web)."
  type        = string
  default     = "m6i.large"
}

variable "control_instance_count" {
  description = "Control instances. Two or more: dispatchers and ingest may run side by side safely."
  type        = number
  default     = 2
}

variable "vpc_id" {
  description = "VPC of the database and the control instances."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets of the database and the control instances."
  type        = list(string)
}

variable "visibility_margin_seconds" {
  description = "SYNMON_SQS_VISIBILITY_MARGIN; results and dispatch queues keep a message twice this long."
  type        = number
  default     = 15
}

variable "results_max_receive_count" {
  description = "Deliveries of a result before it moves to the DLQ (synmon: at least 5)."
  type        = number
  default     = 5
}

variable "db_instance_class" {
  description = "RDS instance class of the Postgres database."
  type        = string
  default     = "db.m6g.large"
}

variable "db_allocated_storage" {
  description = "Storage of the database in GiB."
  type        = number
  default     = 200
}

variable "db_multi_az" {
  description = "A standby in another availability zone (prod)."
  type        = bool
  default     = true
}

variable "db_password" {
  description = "Password of the synmon database user."
  type        = string
  sensitive   = true
}

variable "events_url" {
  description = "SYNMON_EVENTS_URL (Redis) for Flower; empty for none."
  type        = string
  default     = ""
  sensitive   = true
}

variable "flower_basic_auth" {
  description = "SYNMON_FLOWER_BASIC_AUTH (user:password)."
  type        = string
  sensitive   = true
}

variable "ssh_user" {
  description = "User of the readiness check's SSH connection."
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

variable "kms_key_arn" {
  description = "KMS key for the database, the bucket and the alarm topic."
  type        = string
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = {}
}
