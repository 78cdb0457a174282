# The prod environment: the central module in eu-west-1 and one region module per
# location. Roll it with deploy/release (terraform apply -replace=... per instance).
terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.60"
    }
  }
  backend "s3" {
    bucket         = "synmon-terraform-state"
    key            = "synmon/prod.tfstate"
    region         = "eu-west-1"
    encrypt        = true
    dynamodb_table = "synmon-terraform-locks"
  }
}

locals {
  environment = "prod"
  locations   = ["eu-west-1", "us-east-1", "ap-southeast-2"]
  image       = "${var.image_repository}:${var.image_tag}"
}

provider "aws" {
  alias  = "eu_west_1"
  region = "eu-west-1"
  default_tags {
    tags = { "synmon:environment" = "prod" }
  }
}

provider "aws" {
  alias  = "us_east_1"
  region = "us-east-1"
  default_tags {
    tags = { "synmon:environment" = "prod" }
  }
}

provider "aws" {
  alias  = "ap_southeast_2"
  region = "ap-southeast-2"
  default_tags {
    tags = { "synmon:environment" = "prod" }
  }
}

module "central" {
  source    = "../../modules/central"
  providers = { aws = aws.eu_west_1 }

  environment            = local.environment
  locations              = local.locations
  run_queue_arns         = concat(values(module.region_eu_west_1.run_queue_arns), values(module.region_us_east_1.run_queue_arns), values(module.region_ap_southeast_2.run_queue_arns))
  image                  = local.image
  ami_id                 = var.ami_ids["eu-west-1"]
  control_instance_count = 2
  vpc_id                 = var.vpc_ids["eu-west-1"]
  subnet_ids             = var.subnet_ids["eu-west-1"]
  db_instance_class      = "db.m6g.large"
  db_multi_az            = true
  db_password            = var.db_password
  events_url             = var.events_url
  flower_basic_auth      = var.flower_basic_auth
  kms_key_arn            = var.kms_key_arn
  ssh_private_key        = var.ssh_private_key
  bastion_host           = var.bastion_hosts["eu-west-1"]
}

module "region_eu_west_1" {
  source    = "../../modules/region"
  providers = { aws = aws.eu_west_1 }

  environment          = local.environment
  location             = "eu-west-1"
  locations            = local.locations
  image                = local.image
  instance_count       = 3
  ami_id               = var.ami_ids["eu-west-1"]
  vpc_id               = var.vpc_ids["eu-west-1"]
  subnet_ids           = var.subnet_ids["eu-west-1"]
  central_region       = module.central.region
  results_queue_arn    = module.central.results_queue_arn
  queue_url_prefix     = module.central.queue_url_prefix
  artifacts_bucket_arn = module.central.artifacts_bucket_arn
  artifacts_url        = module.central.artifacts_url
  alarm_topic_arn      = module.central.alarm_topic_arn
  events_url           = var.events_url
  ssh_private_key      = var.ssh_private_key
  bastion_host         = var.bastion_hosts["eu-west-1"]
}

module "region_us_east_1" {
  source    = "../../modules/region"
  providers = { aws = aws.us_east_1 }

  environment          = local.environment
  location             = "us-east-1"
  locations            = local.locations
  image                = local.image
  instance_count       = 3
  ami_id               = var.ami_ids["us-east-1"]
  vpc_id               = var.vpc_ids["us-east-1"]
  subnet_ids           = var.subnet_ids["us-east-1"]
  central_region       = module.central.region
  results_queue_arn    = module.central.results_queue_arn
  queue_url_prefix     = module.central.queue_url_prefix
  artifacts_bucket_arn = module.central.artifacts_bucket_arn
  artifacts_url        = module.central.artifacts_url
  alarm_topic_arn      = module.central.alarm_topic_arn
  events_url           = var.events_url
  ssh_private_key      = var.ssh_private_key
  bastion_host         = var.bastion_hosts["us-east-1"]
}

module "region_ap_southeast_2" {
  source    = "../../modules/region"
  providers = { aws = aws.ap_southeast_2 }

  environment          = local.environment
  location             = "ap-southeast-2"
  locations            = local.locations
  image                = local.image
  instance_count       = 3
  ami_id               = var.ami_ids["ap-southeast-2"]
  vpc_id               = var.vpc_ids["ap-southeast-2"]
  subnet_ids           = var.subnet_ids["ap-southeast-2"]
  central_region       = module.central.region
  results_queue_arn    = module.central.results_queue_arn
  queue_url_prefix     = module.central.queue_url_prefix
  artifacts_bucket_arn = module.central.artifacts_bucket_arn
  artifacts_url        = module.central.artifacts_url
  alarm_topic_arn      = module.central.alarm_topic_arn
  events_url           = var.events_url
  ssh_private_key      = var.ssh_private_key
  bastion_host         = var.bastion_hosts["ap-southeast-2"]
}

