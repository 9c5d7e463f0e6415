# Plan and apply of the whole root module against mocked providers: no AWS
# account, no credentials. Run through scripts/check-terraform, which makes a
# scratch copy under target/ with placeholder zips in tests/artifacts/
# (tests/contract/tf_test_copy.py) and, offline, pins the provider mirror's
# hashicorp/aws. Values a mock invents (ARNs, ids) are never asserted on;
# everything asserted comes from the configuration.

mock_provider "aws" {
  source = "./tests/mocks"
}

mock_provider "random" {}

variables {
  lambda_artifacts_dir = "tests/artifacts"
}

run "plan" {
  command = plan

  assert {
    condition     = module.profiles.capacity.billing_mode == "PAY_PER_REQUEST" && length(module.profiles.capacity.autoscaling) == 0
    error_message = "The profiles table is on demand by default, without auto scaling."
  }

  assert {
    condition     = output.function_url == null
    error_message = "No function URL unless http_function_url.enabled."
  }
}

run "apply" {
  command = apply

  # The mock gives every queue one ARN; the consumer's dead-letter queue gets
  # its own, so that the mapping, the role and the environment are seen to
  # name this queue and no other.
  override_resource {
    target = module.consumer_trigger.aws_sqs_queue.dlq
    values = {
      arn = "arn:aws:sqs:us-east-1:123456789012:gender-dev-consumer-dlq"
      id  = "https://sqs.us-east-1.amazonaws.com/123456789012/gender-dev-consumer-dlq"
      url = "https://sqs.us-east-1.amazonaws.com/123456789012/gender-dev-consumer-dlq"
    }
  }

  override_resource {
    target = module.stream.aws_kinesis_stream.this
    values = {
      arn = "arn:aws:kinesis:us-east-1:123456789012:stream/gender-dev-hits"
    }
  }

  # ---- queues and the stream: redrive and event source mappings

  assert {
    condition = (
      module.curate_trigger.delivery.redrive.max_receive_count == 5 &&
      module.curate_trigger.delivery.visibility_timeout_seconds == 6 * 300 &&
      module.curate_trigger.delivery.mapping.batch_size == 5 &&
      module.curate_trigger.delivery.mapping.maximum_concurrency == 20 &&
      toset(module.curate_trigger.delivery.mapping.function_response_types) == toset(["ReportBatchItemFailures"])
    )
    error_message = "Curate queue: 5 receives then the DLQ, visibility 6 x the 300 s timeout, batches of 5, 20 concurrent, partial batch failures: ${jsonencode(module.curate_trigger.delivery)}"
  }

  assert {
    condition = (
      module.erase_queue.delivery.redrive.max_receive_count == 5 &&
      module.erase_queue.delivery.visibility_timeout_seconds == 6 * 900 &&
      module.erase_queue.delivery.mapping.batch_size == 1000 &&
      module.erase_queue.delivery.mapping.maximum_batching_window_in_seconds == 300 &&
      module.erase_queue.delivery.mapping.maximum_concurrency == 2 &&
      toset(module.erase_queue.delivery.mapping.function_response_types) == toset(["ReportBatchItemFailures"])
    )
    error_message = "Erase queue: 5 receives, visibility 6 x 900 s, batches of 1000 within 300 s, 2 concurrent, partial batch failures: ${jsonencode(module.erase_queue.delivery)}"
  }

  assert {
    condition = (
      module.consumer_trigger.mapping.event_source_arn == "arn:aws:kinesis:us-east-1:123456789012:stream/gender-dev-hits" &&
      module.consumer_trigger.mapping.starting_position == "TRIM_HORIZON" &&
      module.consumer_trigger.mapping.batch_size == 1000 &&
      module.consumer_trigger.mapping.maximum_batching_window_in_seconds == 0 &&
      module.consumer_trigger.mapping.parallelization_factor == 1 &&
      toset(module.consumer_trigger.mapping.function_response_types) == toset(["ReportBatchItemFailures"]) &&
      module.consumer_trigger.mapping.bisect_batch_on_function_error == true &&
      module.consumer_trigger.mapping.maximum_retry_attempts == 10
    )
    error_message = "Consumer mapping: the hits stream from TRIM_HORIZON, batches of up to 1000 without a window, one batch per shard, partial batch failures, bisection, 10 retries: ${jsonencode(module.consumer_trigger.mapping)}"
  }

  assert {
    condition = (
      module.consumer_trigger.mapping.maximum_record_age_in_seconds == 3600 &&
      module.consumer_trigger.mapping.maximum_record_age_in_seconds <= var.dedup_horizon_seconds
    )
    error_message = "Consumer mapping: records are handed over within the deduplication horizon (3600 s): ${jsonencode(module.consumer_trigger.mapping)}"
  }

  assert {
    condition = (
      module.consumer_trigger.mapping.on_failure_destination_arn == "arn:aws:sqs:us-east-1:123456789012:gender-dev-consumer-dlq" &&
      module.consumer_trigger.dlq_name == "gender-dev-consumer-dlq" &&
      module.consumer.settings.environment["DEAD_LETTER_QUEUE_URL"] == "https://sqs.us-east-1.amazonaws.com/123456789012/gender-dev-consumer-dlq" &&
      data.aws_iam_policy_document.consumer_dead_letter.statement[0].actions == toset(["sqs:SendMessage"]) &&
      data.aws_iam_policy_document.consumer_dead_letter.statement[0].resources == toset(["arn:aws:sqs:us-east-1:123456789012:gender-dev-consumer-dlq"])
    )
    error_message = "The mapping's on-failure destination, the function's DEAD_LETTER_QUEUE_URL and the role's sqs:SendMessage all name <name>-consumer-dlq: ${jsonencode(module.consumer_trigger.mapping)}"
  }

  assert {
    condition = (
      data.aws_iam_policy_document.consumer_stream.statement[0].actions == toset(["kinesis:DescribeStream", "kinesis:DescribeStreamSummary", "kinesis:GetRecords", "kinesis:GetShardIterator", "kinesis:ListShards"]) &&
      data.aws_iam_policy_document.consumer_stream.statement[0].resources == toset(["arn:aws:kinesis:us-east-1:123456789012:stream/gender-dev-hits"]) &&
      data.aws_iam_policy_document.consumer_dynamodb.statement[0].actions == toset(["dynamodb:BatchGetItem", "dynamodb:UpdateItem"]) &&
      length(data.aws_iam_policy_document.consumer_stream.statement) == 1 && length(data.aws_iam_policy_document.consumer_dynamodb.statement) == 1
    )
    error_message = "Consumer role: the mapping's Kinesis reads on the hits stream, BatchGetItem and UpdateItem on the table."
  }

  assert {
    condition = (
      keys(module.consumer.settings.environment) == tolist(["DEAD_LETTER_QUEUE_URL", "DEDUP_HORIZON_SECONDS", "PROFILES_TABLE_NAME"]) &&
      module.consumer.settings.environment["DEDUP_HORIZON_SECONDS"] == "3600" &&
      module.consumer.settings.environment["PROFILES_TABLE_NAME"] == "gender-dev-profiles" &&
      module.curate.settings.environment["DEDUP_HORIZON_SECONDS"] == "3600" &&
      !contains(keys(module.curate.settings.environment), "PROFILES_TABLE_NAME")
    )
    error_message = "Consumer environment: the table, its dead-letter queue, curate's horizon; curate no longer names the table: ${jsonencode(module.consumer.settings.environment)}"
  }

  # ---- functions: sizes, timeouts, logging

  assert {
    condition = (
      module.http.settings.memory_mb == 256 && module.http.settings.timeout_seconds == 29 &&
      module.consumer.settings.memory_mb == 256 && module.consumer.settings.timeout_seconds == 60 &&
      module.transform.settings.memory_mb == 256 && module.transform.settings.timeout_seconds == 120 &&
      module.curate.settings.memory_mb == 1024 && module.curate.settings.timeout_seconds == 300 &&
      module.daily.settings.memory_mb == 2048 && module.daily.settings.timeout_seconds == 900 &&
      module.erase.settings.memory_mb == 2048 && module.erase.settings.timeout_seconds == 900
    )
    error_message = "Memory and timeouts differ from the documented defaults."
  }

  assert {
    condition = alltrue([
      for s in [module.http.settings, module.transform.settings, module.consumer.settings, module.curate.settings, module.daily.settings, module.erase.settings] :
      s.runtime == "provided.al2023" && s.architectures == tolist(["arm64"]) && s.log_format == "JSON" && s.application_log_level == "INFO"
    ])
    error_message = "Every function: provided.al2023 on arm64, JSON logs at INFO."
  }

  assert {
    condition = (
      module.http.settings.system_log_level == "WARN" &&
      alltrue([for s in [module.transform.settings, module.consumer.settings, module.curate.settings, module.daily.settings, module.erase.settings] : s.system_log_level == "INFO"])
    )
    error_message = "Background functions keep platform INFO (the REPORT lines); http stays at WARN."
  }

  assert {
    condition     = module.daily.settings.dead_letter_queue == "gender-dev-daily-async-dlq" && module.curate.settings.dead_letter_queue == null && module.consumer.settings.dead_letter_queue == null
    error_message = "Only the asynchronously invoked daily function has an async dead-letter queue."
  }

  # ---- Firehose: the transform's invocation stays well under 6 MB

  assert {
    condition = (
      module.delivery.processor_parameters["BufferSizeInMBs"] == "0.25" &&
      module.delivery.processor_parameters["BufferIntervalInSeconds"] == "10" &&
      endswith(module.delivery.processor_parameters["LambdaArn"], ":$LATEST")
    )
    error_message = "Processor parameters: ${jsonencode(module.delivery.processor_parameters)}"
  }

  # ---- alarms: each watches the metric it is named for

  assert {
    condition = (
      module.alarms.metrics["gender-dev-api-5xx"].metrics == tolist(["5xx", "Count"]) &&
      module.alarms.metrics["gender-dev-api-5xx"].namespace == "AWS/ApiGateway" &&
      module.alarms.metrics["gender-dev-api-5xx"].threshold == 1
    )
    error_message = "API 5xx alarm: ${jsonencode(module.alarms.metrics["gender-dev-api-5xx"])}"
  }

  assert {
    condition = (
      module.alarms.metrics["gender-dev-api-latency-p99"].metrics == tolist(["Latency"]) &&
      module.alarms.metrics["gender-dev-api-latency-p99"].statistic == "p99" &&
      module.alarms.metrics["gender-dev-api-integration-latency-p99"].metrics == tolist(["IntegrationLatency"]) &&
      module.alarms.metrics["gender-dev-api-integration-latency-p99"].statistic == "p99" &&
      module.alarms.metrics["gender-dev-api-latency-p99"].threshold == 1000
    )
    error_message = "API latency alarms: p99 of Latency and IntegrationLatency above 1000 ms."
  }

  assert {
    condition = (
      toset(module.alarms.metrics["gender-dev-dynamodb-throttled-requests"].metrics) == toset(["ThrottledRequests"]) &&
      toset([for d in module.alarms.metrics["gender-dev-dynamodb-throttled-requests"].dimensions : d.Operation]) ==
      toset(["GetItem", "PutItem", "UpdateItem", "DeleteItem", "BatchGetItem"]) &&
      alltrue([for d in module.alarms.metrics["gender-dev-dynamodb-throttled-requests"].dimensions : d.TableName == "gender-dev-profiles"])
    )
    error_message = "Throttled requests alarm: ${jsonencode(module.alarms.metrics["gender-dev-dynamodb-throttled-requests"])}"
  }

  assert {
    condition = (
      module.alarms.metrics["gender-dev-dynamodb-read-throttle-events"].metrics == tolist(["ReadThrottleEvents"]) &&
      module.alarms.metrics["gender-dev-dynamodb-write-throttle-events"].metrics == tolist(["WriteThrottleEvents"]) &&
      module.alarms.metrics["gender-dev-dynamodb-transaction-conflicts"].metrics == tolist(["TransactionConflict"]) &&
      tolist([for d in module.alarms.metrics["gender-dev-dynamodb-transaction-conflicts"].dimensions : d.TableName]) == tolist(["gender-dev-profiles"])
    )
    error_message = "DynamoDB throttle-event and transaction-conflict alarms on the profiles table."
  }

  assert {
    condition = (
      module.alarms.metrics["gender-dev-lambda-consumer-iterator-age"].namespace == "AWS/Lambda" &&
      module.alarms.metrics["gender-dev-lambda-consumer-iterator-age"].metrics == tolist(["IteratorAge"]) &&
      module.alarms.metrics["gender-dev-lambda-consumer-iterator-age"].statistic == "Maximum" &&
      module.alarms.metrics["gender-dev-lambda-consumer-iterator-age"].threshold == 5000 &&
      module.alarms.metrics["gender-dev-lambda-consumer-iterator-age"].dimensions[0].FunctionName == "gender-dev-consumer" &&
      module.alarms.metrics["gender-dev-lambda-consumer-errors"].metrics == tolist(["Errors"]) &&
      module.alarms.metrics["gender-dev-lambda-consumer-errors"].dimensions[0].FunctionName == "gender-dev-consumer" &&
      module.alarms.metrics["gender-dev-dlq-consumer"].metrics == tolist(["ApproximateNumberOfMessagesVisible"]) &&
      module.alarms.metrics["gender-dev-dlq-consumer"].dimensions[0].QueueName == "gender-dev-consumer-dlq" &&
      module.alarms.metrics["gender-dev-dlq-consumer"].threshold == 0
    )
    error_message = "Consumer alarms: its IteratorAge above 5 s, its errors, a message in its dead-letter queue."
  }

  assert {
    condition = alltrue([
      for name, a in module.alarms.metrics : a.actions == toset([module.alarms.topic_arn]) || a.actions == tolist([module.alarms.topic_arn])
    ])
    error_message = "Every alarm notifies the alarm topic."
  }

  assert {
    condition     = length(module.alarms.metrics) == length(module.alarms.alarm_names) && length(module.alarms.metrics) == 27
    error_message = "27 alarms expected, got ${length(module.alarms.metrics)}: ${jsonencode(keys(module.alarms.metrics))}"
  }

  # ---- IAM: exact actions on exact resources for the data plane

  assert {
    condition = alltrue(flatten([
      for d in [
        data.aws_iam_policy_document.http_kinesis, data.aws_iam_policy_document.http_dynamodb,
        data.aws_iam_policy_document.http_erasure_queue, data.aws_iam_policy_document.http_erasure_salt,
        data.aws_iam_policy_document.http_api_key, data.aws_iam_policy_document.consumer_stream,
        data.aws_iam_policy_document.consumer_dynamodb, data.aws_iam_policy_document.consumer_dead_letter,
        data.aws_iam_policy_document.curate_raw, data.aws_iam_policy_document.curate_curated,
        data.aws_iam_policy_document.curate_queue, data.aws_iam_policy_document.daily_curated,
        data.aws_iam_policy_document.daily_dynamodb, data.aws_iam_policy_document.erase_dynamodb,
        data.aws_iam_policy_document.erase_curated, data.aws_iam_policy_document.erase_athena,
        data.aws_iam_policy_document.erase_glue, data.aws_iam_policy_document.erase_results,
        data.aws_iam_policy_document.erase_queue,
        ] : [
        for s in d.statement : [
          length(s.actions) > 0 && length(s.resources) > 0,
          alltrue([for a in s.actions : !strcontains(a, "*")]),
          !contains(tolist(s.resources), "*"),
          coalesce(s.effect, "Allow") == "Allow",
        ]
      ]
    ]))
    error_message = "A function policy statement has a wildcard action, a \"*\" resource or no resource."
  }

  assert {
    condition     = length(data.aws_iam_policy_document.curate_raw.statement) == 2
    error_message = "keep_raw = true (default): curate may not delete raw objects."
  }

  # ---- curate's deduplication index: kept, its old versions gone after a day

  assert {
    condition = (
      module.curated_bucket.lifecycle_rules["dedup-index"].prefix == "dedup/" &&
      module.curated_bucket.lifecycle_rules["dedup-index"].expiration_days == null &&
      module.curated_bucket.lifecycle_rules["dedup-index"].noncurrent_expiration_days == 1 &&
      alltrue([for id, r in module.curated_bucket.lifecycle_rules : r.expiration_days == null || !startswith("dedup/index", r.prefix == null ? "" : r.prefix)])
    )
    error_message = "Curated bucket: no rule expires dedup/index, and its noncurrent versions go after 1 day: ${jsonencode(module.curated_bucket.lifecycle_rules)}"
  }

  assert {
    condition = anytrue([
      for s in data.aws_iam_policy_document.curate_curated.statement :
      s.actions == toset(["s3:GetObject", "s3:PutObject"]) && length(s.resources) == 1 && endswith(one(s.resources), "/dedup/*")
    ])
    error_message = "Curate reads and replaces its deduplication index under dedup/ only."
  }

  # ---- secrets

  assert {
    condition = (
      aws_ssm_parameter.api_key.type == "SecureString" && aws_ssm_parameter.api_key.value == random_password.api_key.result &&
      aws_ssm_parameter.erasure_salt.type == "SecureString" && aws_ssm_parameter.erasure_salt.value == random_password.erasure_salt.result &&
      aws_ssm_parameter.api_key.name == "/gender/dev/api-key" &&
      aws_ssm_parameter.ingest_key.type == "SecureString" && aws_ssm_parameter.ingest_key.value == random_password.ingest_key.result &&
      aws_ssm_parameter.ingest_key.name == "/gender/dev/ingest-key" &&
      aws_ssm_parameter.read_key.type == "SecureString" && aws_ssm_parameter.read_key.value == random_password.read_key.result &&
      aws_ssm_parameter.read_key.name == "/gender/dev/read-key"
    )
    error_message = "The three keys and the erasure salt are SecureStrings holding the generated values."
  }

  assert {
    condition     = module.api.cors == null && module.http.settings.environment["CORS_ORIGINS"] == ""
    error_message = "CORS is off by default."
  }
}

run "provisioned_capacity_with_auto_scaling" {
  command = apply

  variables {
    dynamodb_capacity_mode        = "PROVISIONED"
    dynamodb_provisioned_capacity = { read_min = 10, read_max = 2000, write_min = 20, write_max = 3000, target_utilization_percent = 60 }
  }

  assert {
    condition = (
      module.profiles.capacity.billing_mode == "PROVISIONED" &&
      module.profiles.capacity.autoscaling.read.dimension == "dynamodb:table:ReadCapacityUnits" &&
      module.profiles.capacity.autoscaling.read.min == 10 && module.profiles.capacity.autoscaling.read.max == 2000 &&
      module.profiles.capacity.autoscaling.read.metric == "DynamoDBReadCapacityUtilization" &&
      module.profiles.capacity.autoscaling.write.dimension == "dynamodb:table:WriteCapacityUnits" &&
      module.profiles.capacity.autoscaling.write.min == 20 && module.profiles.capacity.autoscaling.write.max == 3000 &&
      module.profiles.capacity.autoscaling.write.metric == "DynamoDBWriteCapacityUtilization" &&
      module.profiles.capacity.autoscaling.read.target_utilization_percent == 60 &&
      module.profiles.capacity.autoscaling.write.target_utilization_percent == 60
    )
    error_message = "Provisioned mode: ${jsonencode(module.profiles.capacity)}"
  }
}

run "browser_front_door" {
  command = apply

  variables {
    http_function_url = { enabled = true, cors_allow_origins = ["https://www.example.com"] }
  }

  assert {
    condition = (
      output.function_url != null &&
      module.http_function_url[0].settings.authorization_type == "NONE" &&
      module.http_function_url[0].settings.cors[0].allow_origins == toset(["https://www.example.com"]) &&
      module.http_function_url[0].settings.cors[0].allow_headers == toset(["content-type", "x-api-key"]) &&
      module.http_function_url[0].settings.permissions["AllowPublicFunctionUrl"].action == "lambda:InvokeFunctionUrl" &&
      module.http_function_url[0].settings.permissions["AllowPublicFunctionUrl"].auth_type == "NONE" &&
      module.http_function_url[0].settings.permissions["AllowPublicFunctionUrlInvoke"].action == "lambda:InvokeFunction"
    )
    error_message = "Function URL: ${jsonencode(module.http_function_url[0].settings)}"
  }
}

run "browser_cors" {
  command = apply

  variables {
    cors_allow_origins = ["https://www.example.com", "https://example.com"]
    http_function_url  = { enabled = true, cors_allow_origins = ["https://app.example.com", "https://example.com"] }
  }

  assert {
    condition = (
      module.api.cors.allow_origins == toset(["https://www.example.com", "https://example.com"]) &&
      module.api.cors.allow_methods == toset(["POST"]) &&
      module.http.settings.environment["CORS_ORIGINS"] == "https://www.example.com,https://example.com,https://app.example.com"
    )
    error_message = "CORS: ${jsonencode(module.api.cors)}, function: ${module.http.settings.environment["CORS_ORIGINS"]}"
  }
}

run "keep_raw_false_lets_curate_delete" {
  command = plan

  variables {
    keep_raw = false
  }

  assert {
    condition = anytrue([
      for s in data.aws_iam_policy_document.curate_raw.statement : s.actions == toset(["s3:DeleteObject"]) && s.sid == "DeleteCuratedRaw"
    ])
    error_message = "keep_raw = false grants curate s3:DeleteObject on raw/*."
  }
}

run "rejects_a_processor_buffer_that_can_overflow_the_payload" {
  command = plan

  variables {
    firehose_processor_buffer_size_mb = 1
  }

  expect_failures = [var.firehose_processor_buffer_size_mb]
}

run "rejects_firehose_default_processor_interval" {
  command = plan

  variables {
    firehose_processor_buffer_interval_seconds = 60
  }

  expect_failures = [var.firehose_processor_buffer_interval_seconds]
}

run "consumer_record_age_follows_a_shorter_horizon" {
  command = plan

  variables {
    dedup_horizon_seconds               = 600
    consumer_maximum_record_age_seconds = 600
  }

  assert {
    condition     = module.consumer_trigger.mapping.maximum_record_age_in_seconds == 600
    error_message = "The record age bound follows the horizon: ${jsonencode(module.consumer_trigger.mapping)}"
  }
}

run "rejects_a_consumer_record_age_beyond_the_horizon" {
  command = plan

  variables {
    dedup_horizon_seconds = 600
  }

  expect_failures = [var.consumer_maximum_record_age_seconds]
}

run "consumer_starts_at_a_timestamp" {
  command = plan

  variables {
    consumer_starting_position           = "AT_TIMESTAMP"
    consumer_starting_position_timestamp = "2026-11-24T10:00:00Z"
  }

  assert {
    condition = (
      module.consumer_trigger.mapping.starting_position == "AT_TIMESTAMP" &&
      module.consumer_trigger.mapping.starting_position_timestamp == "2026-11-24T10:00:00Z"
    )
    error_message = "AT_TIMESTAMP with its time: ${jsonencode(module.consumer_trigger.mapping)}"
  }
}

run "rejects_at_timestamp_without_a_time" {
  command = plan

  variables {
    consumer_starting_position = "AT_TIMESTAMP"
  }

  expect_failures = [var.consumer_starting_position_timestamp]
}
