# The stream consumer (SPEC 19) on AWS: an event source mapping on the hits
# stream hands gender-consumer each shard's records; it applies every
# visitor's hits to the profiles table, exactly once, about a second after
# the 202 (docs/DEPLOY.md, "The stream consumer"). Firehose and curate keep
# the archive; curate no longer touches the counters.

module "consumer" {
  source = "./modules/lambda"

  name                 = "${local.name}-consumer"
  description          = "gender-consumer: Kinesis batches -> per-visitor counters in DynamoDB, exactly once (SPEC 6, 15, 19)"
  filename             = "${local.artifacts_dir}/gender-consumer/bootstrap.zip"
  memory_mb            = var.lambda_memory_mb.consumer
  timeout_seconds      = var.lambda_timeout_seconds.consumer
  reserved_concurrency = var.lambda_reserved_concurrency.consumer
  log_retention_days   = var.log_retention_days
  log_level            = var.log_level
  system_log_level     = var.lambda_system_log_level.consumer

  environment_variables = {
    PROFILES_TABLE_NAME   = module.profiles.name
    DEAD_LETTER_QUEUE_URL = module.consumer_trigger.dlq_url
    DEDUP_HORIZON_SECONDS = tostring(var.dedup_horizon_seconds)
  }

  policy_documents = {
    stream      = data.aws_iam_policy_document.consumer_stream.json
    dynamodb    = data.aws_iam_policy_document.consumer_dynamodb.json
    dead_letter = data.aws_iam_policy_document.consumer_dead_letter.json
  }

  tags = local.tags
}

module "consumer_trigger" {
  source = "./modules/consumer_trigger"

  name                        = "${local.name}-consumer"
  stream_arn                  = module.stream.arn
  function_name               = module.consumer.function_name
  starting_position           = var.consumer_starting_position
  starting_position_timestamp = var.consumer_starting_position_timestamp
  batch_size                  = var.consumer_batch_size
  batching_window_seconds     = var.consumer_batching_window_seconds
  parallelization_factor      = var.consumer_parallelization_factor
  maximum_retry_attempts      = var.consumer_maximum_retry_attempts
  maximum_record_age_seconds  = var.consumer_maximum_record_age_seconds
  tags                        = local.tags
}
