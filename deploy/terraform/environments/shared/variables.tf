# Shared by every environment (each links to this file): what an environment is given.
variable "image_repository" {
  description = "Registry and repository of the synmon image, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/synmon."
  type        = string
}

variable "image_tag" {
  description = "The tag to run: test for the test environment, latest for prod, or a version."
  type        = string
}

variable "ami_ids" {
  description = "AMI with Docker, by region."
  type        = map(string)
}

variable "vpc_ids" {
  description = "VPC by region."
  type        = map(string)
}

variable "subnet_ids" {
  description = "Private subnets by region."
  type        = map(list(string))
}

variable "bastion_hosts" {
  description = "Bastion host (address) by region, for the readiness checks."
  type        = map(string)
}

variable "ssh_private_key" {
  description = "Key of the readiness checks' SSH connections."
  type        = string
  sensitive   = true
}

variable "db_password" {
  description = "Password of the synmon database user."
  type        = string
  sensitive   = true
}

variable "events_url" {
  description = "SYNMON_EVENTS_URL (Redis, e.g. ElastiCache) for Flower; empty for none."
  type        = string
  default     = ""
  sensitive   = true
}

variable "flower_basic_auth" {
  description = "SYNMON_FLOWER_BASIC_AUTH (user:password)."
  type        = string
  sensitive   = true
}

variable "kms_key_arn" {
  description = "KMS key for the database, the artifacts bucket and the alarm topic."
  type        = string
}
