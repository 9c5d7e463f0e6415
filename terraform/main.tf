# Gender Service on AWS (SPEC 11): API Gateway -> gender-http -> Kinesis ->
# gender-consumer -> DynamoDB counters (consumer.tf), and the archive Kinesis ->
# Firehose (+ gender-transform) -> S3 raw -> SQS -> gender-curate -> S3 curated;
# EventBridge -> gender-daily; Glue tables for Athena; alarms;
# erasure (erasure.tf): gender-http -> SQS -> gender-erase.

data "aws_caller_identity" "current" {}

locals {
  name          = "${var.project}-${var.environment}"
  account_id    = data.aws_caller_identity.current.account_id
  artifacts_dir = coalesce(var.lambda_artifacts_dir, "${path.root}/../target/lambda")

  # Where Firehose puts records it could not deliver, in the raw and the
  # backup bucket: both buckets expire it, an alarm watches the raw one.
  error_prefix = "errors/"

  # Every DynamoDB operation the functions make on the profiles table, no
  # more (the contract test derives them from the code): the throttling alarm
  # sums ThrottledRequests over these, the metric having no table-wide total.
  table_operations = ["GetItem", "PutItem", "UpdateItem", "DeleteItem", "BatchGetItem"]

  # Curate's deduplication index (one object, dedup/index, rewritten for
  # every raw object) in the curated bucket.
  dedup_index_prefix = "dedup/"

  # Every origin whose pages may POST /hits (SPEC 18): the HTTP API's and the
  # function URL's. gender-http refuses POST /hits from any other origin.
  cors_origins = distinct(concat(var.cors_allow_origins, var.http_function_url.cors_allow_origins))

  tags = merge(var.tags, {
    project     = var.project
    environment = var.environment
    managed_by  = "terraform"
  })
}

# ---------------------------------------------------------------- storage

module "stream" {
  source = "./modules/kinesis"

  name        = "${local.name}-hits"
  stream_mode = var.kinesis_stream_mode
  shard_count = var.kinesis_shard_count
  tags        = local.tags
}

module "raw_bucket" {
  source = "./modules/s3_bucket"

  name          = "${local.name}-raw-${local.account_id}"
  versioning    = false
  force_destroy = var.force_destroy
  lifecycle_rules = [
    { id = "raw", prefix = "raw/", expiration_days = var.raw_expiration_days },
    { id = "errors", prefix = local.error_prefix, expiration_days = var.raw_expiration_days },
  ]
  tags = local.tags
}

module "curated_bucket" {
  source = "./modules/s3_bucket"

  name          = "${local.name}-curated-${local.account_id}"
  versioning    = true
  force_destroy = var.force_destroy
  lifecycle_rules = [
    # Retention (SPEC 17); S3 counts an object's age from when it was last
    # written, which for a dt= partition is its date plus at most a week
    # (late hits, rollups rebuilt for the 7-day window).
    { id = "curated-hits", prefix = "curated/hits/", expiration_days = var.curated_hits_expiration_days, noncurrent_expiration_days = 30 },
    { id = "curated-daily", prefix = "curated/daily/", expiration_days = var.daily_rollups_expiration_days, noncurrent_expiration_days = 30 },
    # gender-erase's Athena results (object paths only, erasure.tf).
    { id = "erase-query-results", prefix = local.erasure_results_prefix, expiration_days = 1, noncurrent_expiration_days = 1 },
    # Curate's deduplication index: the current object never expires (it is
    # the state); each rewrite (one a minute, up to ~30 MB) leaves a version
    # that goes after a day, S3's shortest, not after 30 (docs/DEPLOY.md,
    # "The deduplication index and versioning").
    { id = "dedup-index", prefix = local.dedup_index_prefix, noncurrent_expiration_days = 1 },
  ]
  tags = local.tags
}

module "backup_bucket" {
  source = "./modules/s3_bucket"

  name          = "${local.name}-backup-${local.account_id}"
  versioning    = true
  force_destroy = var.force_destroy
  lifecycle_rules = [
    {
      id                       = "source"
      prefix                   = "source/"
      transition_days          = 30
      transition_storage_class = "GLACIER_IR"
      expiration_days          = var.backup_expiration_days
    },
    # Backup deliveries that failed (BackupToS3.Success alarm): same retention.
    { id = "errors", prefix = local.error_prefix, expiration_days = var.backup_expiration_days },
  ]
  tags = local.tags
}

module "profiles" {
  source = "./modules/dynamodb"

  name                 = "${local.name}-profiles"
  hash_key             = "pk"
  ttl_attribute        = "expires_at"
  capacity_mode        = var.dynamodb_capacity_mode
  provisioned_capacity = var.dynamodb_provisioned_capacity
  warm_throughput      = var.dynamodb_warm_throughput
  tags                 = local.tags
}

# ---------------------------------------------------------------- functions

# The x-api-key credential of SPEC 4, checked by the function's Router. It
# lives in SSM Parameter Store as a SecureString (encrypted with the AWS
# managed key aws/ssm); gender-http reads it once per cold start. It is not an
# environment variable, which lambda:GetFunctionConfiguration would show.
resource "random_password" "api_key" {
  length  = 40
  special = false
}

resource "aws_ssm_parameter" "api_key" {
  name        = "/${var.project}/${var.environment}/api-key"
  description = "x-api-key credential of the ${local.name} HTTP API (read by ${local.name}-http at cold start)"
  type        = "SecureString"
  value       = random_password.api_key.result
  #checkov:skip=CKV_AWS_337:the AWS managed key aws/ssm is enough here: who may read the key is decided by ssm:GetParameters on this one parameter (only the http role has it); a customer managed key would add a key policy and per-role kms:Decrypt grants for no narrower access
}

# The scoped keys of SPEC 18, beside the admin key above (which stays SPEC 4's
# x-api-key): the ingest key may only POST /hits and is meant to be published
# in web pages (tracker.js); the read key may GET /gender and GET /erasures.
# Read by gender-http in the same GetParameters call as the admin key.
resource "random_password" "ingest_key" {
  length  = 40
  special = false
}

resource "aws_ssm_parameter" "ingest_key" {
  name        = "/${var.project}/${var.environment}/ingest-key"
  description = "Ingest key of the ${local.name} HTTP API: POST /hits only, publishable in pages (read by ${local.name}-http at cold start)"
  type        = "SecureString"
  value       = random_password.ingest_key.result
  #checkov:skip=CKV_AWS_337:as for the admin key: ssm:GetParameters on this one parameter (only the http role has it) decides who reads it
}

resource "random_password" "read_key" {
  length  = 40
  special = false
}

resource "aws_ssm_parameter" "read_key" {
  name        = "/${var.project}/${var.environment}/read-key"
  description = "Read key of the ${local.name} HTTP API: GET /gender, GET /erasures (read by ${local.name}-http at cold start)"
  type        = "SecureString"
  value       = random_password.read_key.result
  #checkov:skip=CKV_AWS_337:as for the admin key: ssm:GetParameters on this one parameter (only the http role has it) decides who reads it
}

module "http" {
  source = "./modules/lambda"

  name                 = "${local.name}-http"
  description          = "gender-http: POST /hits, GET /gender/{clientid}, DELETE /visitors/{clientid}, GET /erasures/{id}, /health, /tracker.js, /openapi.json, /docs"
  filename             = "${local.artifacts_dir}/gender-http/bootstrap.zip"
  memory_mb            = var.lambda_memory_mb.http
  timeout_seconds      = var.lambda_timeout_seconds.http
  reserved_concurrency = var.lambda_reserved_concurrency.http
  log_retention_days   = var.log_retention_days
  log_level            = var.log_level
  system_log_level     = var.lambda_system_log_level.http

  environment_variables = {
    HITS_STREAM_NAME       = module.stream.name
    PROFILES_TABLE_NAME    = module.profiles.name
    API_KEY_PARAMETER      = aws_ssm_parameter.api_key.name
    INGEST_KEY_PARAMETER   = aws_ssm_parameter.ingest_key.name
    READ_KEY_PARAMETER     = aws_ssm_parameter.read_key.name
    MAX_BODY_BYTES         = tostring(var.max_body_bytes)
    ERASURE_QUEUE_URL      = module.erase_queue.queue_url
    ERASURE_SALT_PARAMETER = aws_ssm_parameter.erasure_salt.name
    # The Router refuses POST /hits from origins outside the list (SPEC 18);
    # API Gateway's cors_configuration answers the preflights.
    CORS_ORIGINS = join(",", local.cors_origins)
  }

  policy_documents = {
    kinesis       = data.aws_iam_policy_document.http_kinesis.json
    dynamodb      = data.aws_iam_policy_document.http_dynamodb.json
    api_key       = data.aws_iam_policy_document.http_api_key.json
    erasure_queue = data.aws_iam_policy_document.http_erasure_queue.json
    erasure_salt  = data.aws_iam_policy_document.http_erasure_salt.json
  }

  tags = local.tags
}

module "transform" {
  source = "./modules/lambda"

  name                 = "${local.name}-transform"
  description          = "gender-transform: Firehose data transformation (SPEC 5)"
  filename             = "${local.artifacts_dir}/gender-transform/bootstrap.zip"
  memory_mb            = var.lambda_memory_mb.transform
  timeout_seconds      = var.lambda_timeout_seconds.transform
  reserved_concurrency = var.lambda_reserved_concurrency.transform
  log_retention_days   = var.log_retention_days
  log_level            = var.log_level
  system_log_level     = var.lambda_system_log_level.transform

  tags = local.tags
}

module "curate" {
  source = "./modules/lambda"

  name                 = "${local.name}-curate"
  description          = "gender-curate: raw NDJSON -> curated Parquet, deduplicated (SPEC 6, 15); the archive, not the counters"
  filename             = "${local.artifacts_dir}/gender-curate/bootstrap.zip"
  memory_mb            = var.lambda_memory_mb.curate
  timeout_seconds      = var.lambda_timeout_seconds.curate
  reserved_concurrency = var.lambda_reserved_concurrency.curate
  log_retention_days   = var.log_retention_days
  log_level            = var.log_level
  system_log_level     = var.lambda_system_log_level.curate

  environment_variables = {
    CURATED_BUCKET        = module.curated_bucket.name
    KEEP_RAW              = tostring(var.keep_raw)
    DEDUP_HORIZON_SECONDS = tostring(var.dedup_horizon_seconds)
  }

  policy_documents = {
    raw     = data.aws_iam_policy_document.curate_raw.json
    curated = data.aws_iam_policy_document.curate_curated.json
    queue   = data.aws_iam_policy_document.curate_queue.json
  }

  tags = local.tags
}

module "daily" {
  source = "./modules/lambda"

  name                 = "${local.name}-daily"
  description          = "gender-daily: 7-day window and daily rollups (SPEC 7)"
  filename             = "${local.artifacts_dir}/gender-daily/bootstrap.zip"
  memory_mb            = var.lambda_memory_mb.daily
  timeout_seconds      = var.lambda_timeout_seconds.daily
  reserved_concurrency = var.lambda_reserved_concurrency.daily
  log_retention_days   = var.log_retention_days
  log_level            = var.log_level
  system_log_level     = var.lambda_system_log_level.daily

  # Invoked asynchronously by EventBridge: failed runs (after 2 retries) land here.
  create_dead_letter_queue = true

  environment_variables = {
    CURATED_BUCKET          = module.curated_bucket.name
    PROFILES_TABLE_NAME     = module.profiles.name
    DAILY_WRITES_PER_SECOND = tostring(var.daily_writes_per_second)
  }

  policy_documents = {
    curated  = data.aws_iam_policy_document.daily_curated.json
    dynamodb = data.aws_iam_policy_document.daily_dynamodb.json
    continue = data.aws_iam_policy_document.daily_continue.json
  }

  tags = local.tags
}

# ---------------------------------------------------------------- wiring

module "delivery" {
  source = "./modules/firehose"

  name                       = "${local.name}-hits"
  stream_arn                 = module.stream.arn
  raw_bucket_arn             = module.raw_bucket.arn
  backup_bucket_arn          = module.backup_bucket.arn
  transform_function_arn     = module.transform.arn
  buffering_interval_seconds = var.firehose_buffering_interval_seconds
  buffering_size_mb          = var.firehose_buffering_size_mb
  error_prefix               = local.error_prefix
  log_retention_days         = var.log_retention_days

  processor_buffer_size_mb          = var.firehose_processor_buffer_size_mb
  processor_buffer_interval_seconds = var.firehose_processor_buffer_interval_seconds

  tags = local.tags
}

module "curate_trigger" {
  source = "./modules/curate_trigger"

  name                     = "${local.name}-curate"
  raw_bucket_name          = module.raw_bucket.id
  raw_bucket_arn           = module.raw_bucket.arn
  raw_prefix               = "raw/"
  function_name            = module.curate.function_name
  function_timeout_seconds = var.lambda_timeout_seconds.curate
  batch_size               = var.curate_batch_size
  max_receive_count        = var.curate_max_receive_count
  maximum_concurrency      = var.curate_maximum_concurrency
  tags                     = local.tags
}

module "daily_schedule" {
  source = "./modules/schedule"

  name                = "${local.name}-daily"
  schedule_expression = var.daily_schedule_expression
  function_name       = module.daily.function_name
  function_arn        = module.daily.arn
  tags                = local.tags
}

module "api" {
  source = "./modules/api"

  name                   = "${local.name}-api"
  function_name          = module.http.function_name
  function_invoke_arn    = module.http.invoke_arn
  throttling_burst_limit = var.api_throttling_burst_limit
  throttling_rate_limit  = var.api_throttling_rate_limit
  log_retention_days     = var.log_retention_days
  cors_allow_origins     = var.cors_allow_origins
  tags                   = local.tags
}

# The browser front door (docs/DEPLOY.md): a function URL for gender-http,
# beside the HTTP API, when http_function_url.enabled.
module "http_function_url" {
  source = "./modules/function_url"
  count  = var.http_function_url.enabled ? 1 : 0

  function_name        = module.http.function_name
  cors_allow_origins   = var.http_function_url.cors_allow_origins
  cors_max_age_seconds = var.http_function_url.cors_max_age_seconds
}

module "glue" {
  source = "./modules/glue"

  database_name         = replace(local.name, "-", "_")
  curated_bucket_name   = module.curated_bucket.name
  projection_start_date = var.glue_projection_start_date
  tags                  = local.tags
}

module "alarms" {
  source = "./modules/alarms"

  name                      = local.name
  alarm_email               = var.alarm_email
  stream_name               = module.stream.name
  iterator_age_threshold_ms = var.kinesis_iterator_age_threshold_ms
  delivery_stream_name      = module.delivery.name

  # Records Firehose wrote to <raw bucket>/errors/ after their hits got a 202.
  error_records_bucket_name = module.raw_bucket.name
  error_records_prefix      = module.delivery.error_prefix

  curate_queue_name                  = module.curate_trigger.queue_name
  curate_queue_age_threshold_seconds = var.curate_queue_age_threshold_seconds

  api_id                       = module.api.id
  api_5xx_percent_threshold    = var.api_5xx_percent_threshold
  api_latency_p99_threshold_ms = var.api_latency_p99_threshold_ms

  table_name                     = module.profiles.name
  table_operations               = local.table_operations
  transaction_conflict_threshold = var.dynamodb_transaction_conflict_threshold

  function_names = {
    http      = module.http.function_name
    transform = module.transform.function_name
    consumer  = module.consumer.function_name
    curate    = module.curate.function_name
    daily     = module.daily.function_name
    erase     = module.erase.function_name
  }

  # Functions fed by the stream: how old a batch's records are when handed
  # over. The consumer's promise is hits visible within 2 s (SPEC 19).
  iterator_age_function_names        = { consumer = module.consumer.function_name }
  function_iterator_age_threshold_ms = var.consumer_iterator_age_threshold_ms

  # <name>-curate-dlq, <name>-daily-async-dlq, <name>-daily-schedule-dlq,
  # <name>-consumer-dlq: one queue (and alarm) per path, distinct names.
  dead_letter_queue_names = {
    consumer       = module.consumer_trigger.dlq_name
    curate         = module.curate_trigger.dlq_name
    daily_async    = module.daily.dead_letter_queue_name
    daily_schedule = module.daily_schedule.dlq_name
    erase          = module.erase_queue.dlq_name
  }

  tags = local.tags
}
