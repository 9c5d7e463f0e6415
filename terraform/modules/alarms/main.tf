resource "aws_sns_topic" "this" {
  name = "${var.name}-alarms"
  #checkov:skip=CKV_AWS_26:CloudWatch alarms cannot publish to a topic encrypted with the AWS managed key (its key policy grants CloudWatch nothing); notifications carry alarm names only

  tags = merge(var.tags, { Name = "${var.name}-alarms", module = "alarms" })
}

resource "aws_sns_topic_subscription" "email" {
  count = var.alarm_email == "" ? 0 : 1

  topic_arn = aws_sns_topic.this.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

resource "aws_cloudwatch_metric_alarm" "iterator_age" {
  alarm_name          = "${var.name}-kinesis-iterator-age"
  alarm_description   = "Records wait in the hits stream: a reader (Firehose or the stream consumer) is falling behind; records older than the retention are lost to it."
  namespace           = "AWS/Kinesis"
  metric_name         = "GetRecords.IteratorAgeMilliseconds"
  dimensions          = { StreamName = var.stream_name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.iterator_age_threshold_ms
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.this.arn]
  ok_actions          = [aws_sns_topic.this.arn]

  tags = merge(var.tags, { Name = "${var.name}-kinesis-iterator-age", module = "alarms" })
}

resource "aws_cloudwatch_metric_alarm" "data_freshness" {
  alarm_name          = "${var.name}-firehose-data-freshness"
  alarm_description   = "Firehose has not delivered records to S3 for too long."
  namespace           = "AWS/Firehose"
  metric_name         = "DeliveryToS3.DataFreshness"
  dimensions          = { DeliveryStreamName = var.delivery_stream_name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.data_freshness_threshold_seconds
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.this.arn]
  ok_actions          = [aws_sns_topic.this.arn]

  tags = merge(var.tags, { Name = "${var.name}-firehose-data-freshness", module = "alarms" })
}

# Success metrics are ratios (1 = every record succeeded); below 1 means failed
# records (S3 delivery) or failed transform invocations.
resource "aws_cloudwatch_metric_alarm" "delivery_failures" {
  for_each = {
    s3      = "DeliveryToS3.Success"
    backup  = "BackupToS3.Success"
    process = "ExecuteProcessing.Success"
  }

  alarm_name          = "${var.name}-firehose-${each.key}-failures"
  alarm_description   = "Firehose ${each.value} fell below 1: records failed."
  namespace           = "AWS/Firehose"
  metric_name         = each.value
  dimensions          = { DeliveryStreamName = var.delivery_stream_name }
  statistic           = "Minimum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "LessThanThreshold"
  threshold           = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.this.arn]
  ok_actions          = [aws_sns_topic.this.arn]

  tags = merge(var.tags, { Name = "${var.name}-firehose-${each.key}-failures", module = "alarms" })
}

# Hits whose dates span more than 500 dt= values inside one buffer exceed the
# active-partition quota: Firehose writes the rest to the error prefix
# (activePartitionExceeded), after the producer got its 202. 1 = exceeded.
resource "aws_cloudwatch_metric_alarm" "partition_count_exceeded" {
  alarm_name          = "${var.name}-firehose-partition-count-exceeded"
  alarm_description   = "Firehose exceeded its active dynamic-partition quota: records went to the error prefix instead of raw/."
  namespace           = "AWS/Firehose"
  metric_name         = "PartitionCountExceeded"
  dimensions          = { DeliveryStreamName = var.delivery_stream_name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.this.arn]
  ok_actions          = [aws_sns_topic.this.arn]

  tags = merge(var.tags, { Name = "${var.name}-firehose-partition-count-exceeded", module = "alarms" })
}

# S3 request metrics for the error prefix: any PUT there is a record that was
# accepted (202) but did not reach raw/: ProcessingFailed from the transform,
# activePartitionExceeded, or a delivery that failed after its retries.
resource "aws_s3_bucket_metric" "error_records" {
  bucket = var.error_records_bucket_name
  name   = "firehose-error-records"

  filter {
    prefix = var.error_records_prefix
  }
}

resource "aws_cloudwatch_metric_alarm" "error_records" {
  alarm_name          = "${var.name}-firehose-error-records"
  alarm_description   = "Firehose wrote objects to ${var.error_records_prefix} of ${var.error_records_bucket_name}: hits that got a 202 are not in raw/ (inspect the error type in the key)."
  namespace           = "AWS/S3"
  metric_name         = "PutRequests"
  dimensions          = { BucketName = var.error_records_bucket_name, FilterId = aws_s3_bucket_metric.error_records.name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.this.arn]
  ok_actions          = [aws_sns_topic.this.arn]

  tags = merge(var.tags, { Name = "${var.name}-firehose-error-records", module = "alarms" })
}

# Raw objects wait for curate: a backlog (curate slower than Firehose, or
# throttled) or a message that keeps failing until it reaches the DLQ.
resource "aws_cloudwatch_metric_alarm" "curate_queue_age" {
  alarm_name          = "${var.name}-curate-queue-age"
  alarm_description   = "The oldest raw-object notification in ${var.curate_queue_name} waits longer than ${var.curate_queue_age_threshold_seconds} s: lookups lag behind ingest."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateAgeOfOldestMessage"
  dimensions          = { QueueName = var.curate_queue_name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.curate_queue_age_threshold_seconds
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.this.arn]
  ok_actions          = [aws_sns_topic.this.arn]

  tags = merge(var.tags, { Name = "${var.name}-curate-queue-age", module = "alarms" })
}

resource "aws_cloudwatch_metric_alarm" "lambda_errors" {
  for_each = var.function_names

  alarm_name          = "${var.name}-lambda-${each.key}-errors"
  alarm_description   = "Function ${each.value} reported errors."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = each.value }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.this.arn]
  ok_actions          = [aws_sns_topic.this.arn]

  tags = merge(var.tags, { Name = "${var.name}-lambda-${each.key}-errors", module = "alarms" })
}

# Stream consumers: IteratorAge is the age of a batch's last record when the
# mapping hands the batch over (per function). Sustained (3 of 5 minutes)
# above the threshold, hits count later than the function promises: a
# backlog, throttling, or a batch retried again and again.
resource "aws_cloudwatch_metric_alarm" "function_iterator_age" {
  for_each = var.iterator_age_function_names

  alarm_name          = "${var.name}-lambda-${each.key}-iterator-age"
  alarm_description   = "Function ${each.value} receives stream records more than ${var.function_iterator_age_threshold_ms} ms after they arrived (3 of 5 minutes)."
  namespace           = "AWS/Lambda"
  metric_name         = "IteratorAge"
  dimensions          = { FunctionName = each.value }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  datapoints_to_alarm = 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.function_iterator_age_threshold_ms
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.this.arn]
  ok_actions          = [aws_sns_topic.this.arn]

  tags = merge(var.tags, { Name = "${var.name}-lambda-${each.key}-iterator-age", module = "alarms" })
}

resource "aws_cloudwatch_metric_alarm" "dead_letters" {
  for_each = var.dead_letter_queue_names

  alarm_name          = "${var.name}-dlq-${each.key}"
  alarm_description   = "Messages in dead-letter queue ${each.value}: inspect and redrive."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = each.value }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.this.arn]

  tags = merge(var.tags, { Name = "${var.name}-dlq-${each.key}", module = "alarms" })
}

# ---------------------------------------------------------------- HTTP API

# 5xx as a share of requests: API Gateway's own errors (integration timeouts
# and failures, Lambda throttling) and the function's 5xx answers alike.
resource "aws_cloudwatch_metric_alarm" "api_5xx" {
  alarm_name          = "${var.name}-api-5xx"
  alarm_description   = "More than ${var.api_5xx_percent_threshold} % of the HTTP API's requests answered 5xx over 5 minutes."
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.api_5xx_percent_threshold
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.this.arn]
  ok_actions          = [aws_sns_topic.this.arn]

  metric_query {
    id          = "errors"
    return_data = false

    metric {
      namespace   = "AWS/ApiGateway"
      metric_name = "5xx"
      dimensions  = { ApiId = var.api_id }
      stat        = "Sum"
      period      = 300
    }
  }

  metric_query {
    id          = "requests"
    return_data = false

    metric {
      namespace   = "AWS/ApiGateway"
      metric_name = "Count"
      dimensions  = { ApiId = var.api_id }
      stat        = "Sum"
      period      = 300
    }
  }

  metric_query {
    id          = "percent"
    expression  = "IF(requests > 0, 100 * errors / requests, 0)"
    label       = "5xx % of requests"
    return_data = true
  }

  tags = merge(var.tags, { Name = "${var.name}-api-5xx", module = "alarms" })
}

# p99 of what clients wait (Latency) and of what the function takes
# (IntegrationLatency); the difference is API Gateway's own overhead.
resource "aws_cloudwatch_metric_alarm" "api_latency" {
  for_each = {
    latency             = "Latency"
    integration-latency = "IntegrationLatency"
  }

  alarm_name          = "${var.name}-api-${each.key}-p99"
  alarm_description   = "The HTTP API's p99 ${each.value} stayed above ${var.api_latency_p99_threshold_ms} ms (2 of 3 periods of 5 minutes)."
  namespace           = "AWS/ApiGateway"
  metric_name         = each.value
  dimensions          = { ApiId = var.api_id }
  extended_statistic  = "p99"
  period              = 300
  evaluation_periods  = 3
  datapoints_to_alarm = 2
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.api_latency_p99_threshold_ms
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.this.arn]
  ok_actions          = [aws_sns_topic.this.arn]

  tags = merge(var.tags, { Name = "${var.name}-api-${each.key}-p99", module = "alarms" })
}

# ---------------------------------------------------------------- DynamoDB

# Throttled requests of the operations the functions make (the metric has
# an Operation dimension only), summed; any in 5 minutes alarms: the SDKs
# retried them, but a table that keeps throttling needs capacity (on-demand
# peak, provisioned maximum or warm throughput).
resource "aws_cloudwatch_metric_alarm" "table_throttled_requests" {
  alarm_name          = "${var.name}-dynamodb-throttled-requests"
  alarm_description   = "Requests to ${var.table_name} were throttled (ThrottledRequests over ${join(", ", var.table_operations)})."
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.this.arn]
  ok_actions          = [aws_sns_topic.this.arn]

  dynamic "metric_query" {
    for_each = var.table_operations

    content {
      id          = "op${metric_query.key}"
      return_data = false

      metric {
        namespace   = "AWS/DynamoDB"
        metric_name = "ThrottledRequests"
        dimensions  = { TableName = var.table_name, Operation = metric_query.value }
        stat        = "Sum"
        period      = 300
      }
    }
  }

  metric_query {
    id          = "throttled"
    expression  = "SUM(FILL(METRICS(), 0))"
    label       = "throttled requests"
    return_data = true
  }

  tags = merge(var.tags, { Name = "${var.name}-dynamodb-throttled-requests", module = "alarms" })
}

# Read and write request units throttled (table level), and item requests
# rejected because they met a transaction on the same item.
resource "aws_cloudwatch_metric_alarm" "table_events" {
  for_each = {
    read-throttle-events  = "ReadThrottleEvents"
    write-throttle-events = "WriteThrottleEvents"
    transaction-conflicts = "TransactionConflict"
  }

  alarm_name          = "${var.name}-dynamodb-${each.key}"
  alarm_description   = "${each.value} on ${var.table_name} in the last 5 minutes."
  namespace           = "AWS/DynamoDB"
  metric_name         = each.value
  dimensions          = { TableName = var.table_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = each.value == "TransactionConflict" ? var.transaction_conflict_threshold : 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.this.arn]
  ok_actions          = [aws_sns_topic.this.arn]

  tags = merge(var.tags, { Name = "${var.name}-dynamodb-${each.key}", module = "alarms" })
}
