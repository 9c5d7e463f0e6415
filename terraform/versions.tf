terraform {
  # 1.11: S3 native state locking (use_lockfile) is generally available.
  required_version = ">= 1.11"

  # Exact versions: the offline schema check (tests/contract/provider_schema.json)
  # is derived from these two, and no .terraform.lock.hcl is committed
  # (docs/DEPLOY.md, "Provider versions and the lock file").
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "6.25.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "3.7.2"
    }
  }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = local.tags
  }
}
