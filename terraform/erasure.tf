# Erasure (SPEC 17) on AWS: gender-http records DELETE /visitors/{clientid}
# in the erasure log (profiles table, key erasure#<id>) and queues the id;
# gender-erase deletes the profile, finds the curated objects holding the
# visitor with one Athena query per batch, rewrites them without the
# visitor's rows and completes the entry (docs/DEPLOY.md, "Erasure").

locals {
  # Athena writes query results (only object paths) here; they expire after a day.
  erasure_results_prefix = "athena-results/erase/"
}

# The secret salt of the erasure log's clientid hashes. It must stay the same
# for the life of the log: a new salt makes old hashes unmatchable.
resource "random_password" "erasure_salt" {
  length  = 64
  special = false
}

resource "aws_ssm_parameter" "erasure_salt" {
  name        = "/${var.project}/${var.environment}/erasure-salt"
  description = "Secret salt of the ${local.name} erasure log's clientid hashes (read by ${local.name}-http at cold start)"
  type        = "SecureString"
  value       = random_password.erasure_salt.result
  #checkov:skip=CKV_AWS_337:the AWS managed key aws/ssm is enough here: who may read the salt is decided by ssm:GetParameters on this one parameter (only the http role has it), as for the API key
}

resource "aws_athena_workgroup" "erase" {
  name          = "${local.name}-erase"
  description   = "gender-erase: finds the curated objects holding erased visitors"
  force_destroy = true

  configuration {
    enforce_workgroup_configuration    = true
    publish_cloudwatch_metrics_enabled = true
    # A query reads the clientid column of every curated object: this caps
    # what one query may cost if the data grows past the documented scale.
    bytes_scanned_cutoff_per_query = var.erasure_bytes_scanned_cutoff

    result_configuration {
      output_location = "s3://${module.curated_bucket.name}/${local.erasure_results_prefix}"

      encryption_configuration {
        encryption_option = "SSE_S3"
      }
    }
  }

  tags = merge(local.tags, { Name = "${local.name}-erase" })
}

module "erase" {
  source = "./modules/lambda"

  name                 = "${local.name}-erase"
  description          = "gender-erase: erasure of visitors from profiles, curated hits and daily rollups (SPEC 17)"
  filename             = "${local.artifacts_dir}/gender-erase/bootstrap.zip"
  memory_mb            = var.lambda_memory_mb.erase
  timeout_seconds      = var.lambda_timeout_seconds.erase
  reserved_concurrency = var.lambda_reserved_concurrency.erase
  log_retention_days   = var.log_retention_days
  log_level            = var.log_level
  system_log_level     = var.lambda_system_log_level.erase

  environment_variables = {
    CURATED_BUCKET      = module.curated_bucket.name
    PROFILES_TABLE_NAME = module.profiles.name
    GLUE_DATABASE       = module.glue.database_name
    ATHENA_WORKGROUP    = aws_athena_workgroup.erase.name
  }

  policy_documents = {
    dynamodb = data.aws_iam_policy_document.erase_dynamodb.json
    curated  = data.aws_iam_policy_document.erase_curated.json
    athena   = data.aws_iam_policy_document.erase_athena.json
    glue     = data.aws_iam_policy_document.erase_glue.json
    results  = data.aws_iam_policy_document.erase_results.json
    queue    = data.aws_iam_policy_document.erase_queue.json
  }

  tags = local.tags
}

module "erase_queue" {
  source = "./modules/erase_queue"

  name                     = "${local.name}-erase"
  function_name            = module.erase.function_name
  function_timeout_seconds = var.lambda_timeout_seconds.erase
  delay_seconds            = var.erasure_delay_seconds
  batch_size               = var.erasure_batch_size
  batching_window_seconds  = var.erasure_batching_window_seconds
  max_receive_count        = var.erasure_max_receive_count
  tags                     = local.tags
}
