# The stream consumer's trigger (SPEC 19): an event source mapping that hands
# gender-consumer each shard's records in order, and the queue that receives
# what the consumer cannot count. The consumer itself sends poison records
# there (DEAD_LETTER_QUEUE_URL, with their data); the mapping sends there
# what it discards after its retries or past the record age (a shard and a
# sequence-number range, no data). docs/DEPLOY.md, "The stream consumer".

# Encrypted with SQS-managed keys (SSE-SQS): neither the function nor the
# mapping (which sends with the function's role) needs a KMS grant for it.
resource "aws_sqs_queue" "dlq" {
  name                      = "${var.name}-dlq"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true

  tags = merge(var.tags, { Name = "${var.name}-dlq", module = "consumer_trigger" })
}

resource "aws_lambda_event_source_mapping" "this" {
  event_source_arn            = var.stream_arn
  function_name               = var.function_name
  starting_position           = var.starting_position
  starting_position_timestamp = var.starting_position == "AT_TIMESTAMP" ? var.starting_position_timestamp : null

  batch_size                         = var.batch_size
  maximum_batching_window_in_seconds = var.batching_window_seconds
  parallelization_factor             = var.parallelization_factor

  # The consumer answers the earliest record it could not apply; the mapping
  # retries from there (records before it are done). A function error (a
  # timeout, a crash) splits the batch instead, which uses no retry.
  function_response_types        = ["ReportBatchItemFailures"]
  bisect_batch_on_function_error = true
  maximum_retry_attempts         = var.maximum_retry_attempts
  maximum_record_age_in_seconds  = var.maximum_record_age_seconds

  destination_config {
    on_failure {
      destination_arn = aws_sqs_queue.dlq.arn
    }
  }
}
