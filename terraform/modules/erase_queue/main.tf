# The erasure queue (SPEC 17): gender-http sends one message per
# DELETE /visitors/{clientid} (the erasure id only); gender-erase consumes it
# in batches. Its delay lets hits accepted before the request reach curated
# data first, so the erasure finds them.

resource "aws_sqs_queue" "dlq" {
  name                      = "${var.name}-dlq"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true

  tags = merge(var.tags, { Name = "${var.name}-dlq", module = "erase_queue" })
}

resource "aws_sqs_queue" "this" {
  name                       = var.name
  delay_seconds              = var.delay_seconds
  visibility_timeout_seconds = var.function_timeout_seconds * 6
  message_retention_seconds  = 1209600
  sqs_managed_sse_enabled    = true

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dlq.arn
    maxReceiveCount     = var.max_receive_count
  })

  tags = merge(var.tags, { Name = var.name, module = "erase_queue" })
}

resource "aws_sqs_queue_redrive_allow_policy" "dlq" {
  queue_url = aws_sqs_queue.dlq.id

  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.this.arn]
  })
}

# Batches wait up to batching_window_seconds to fill: one Athena query (and
# one pass over the objects it finds) serves every erasure of a batch.
# Two invocations at most (the lowest maximum_concurrency SQS allows); their
# rewrites of one object cannot undo each other (S3 If-Match).
resource "aws_lambda_event_source_mapping" "this" {
  event_source_arn                   = aws_sqs_queue.this.arn
  function_name                      = var.function_name
  batch_size                         = var.batch_size
  maximum_batching_window_in_seconds = var.batching_window_seconds
  function_response_types            = ["ReportBatchItemFailures"]

  scaling_config {
    maximum_concurrency = 2
  }
}
