resource "aws_cloudwatch_log_group" "this" {
  name              = "/aws/lambda/${var.name}"
  retention_in_days = var.log_retention_days
  #checkov:skip=CKV_AWS_158:log groups use CloudWatch Logs' default encryption at rest; a CMK adds a key policy per group for no gain here
  #checkov:skip=CKV_AWS_338:retention is a variable (default 30 days): operational logs, not an audit record

  tags = merge(var.tags, { Name = var.name, module = "lambda" })
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "this" {
  name               = var.name
  assume_role_policy = data.aws_iam_policy_document.assume.json

  tags = merge(var.tags, { Name = var.name, module = "lambda" })
}

# Concern: its own log group only (the group is created here, so no CreateLogGroup).
data "aws_iam_policy_document" "logs" {
  statement {
    sid       = "OwnLogGroup"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this.arn}:*"]
  }
}

resource "aws_iam_role_policy" "logs" {
  name   = "logs"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.logs.json
}

# Concerns of the function's code and trigger, one document each (root module).
resource "aws_iam_role_policy" "this" {
  for_each = var.policy_documents

  name   = each.key
  role   = aws_iam_role.this.id
  policy = each.value
}

resource "aws_sqs_queue" "dlq" {
  count = var.create_dead_letter_queue ? 1 : 0

  name                      = "${var.name}-async-dlq"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true

  tags = merge(var.tags, { Name = "${var.name}-async-dlq", module = "lambda" })
}

# Concern: the dead-letter queue of asynchronous invocations.
data "aws_iam_policy_document" "dlq" {
  count = var.create_dead_letter_queue ? 1 : 0

  statement {
    sid       = "DeadLetterQueue"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dlq[0].arn]
  }
}

resource "aws_iam_role_policy" "dlq" {
  count = var.create_dead_letter_queue ? 1 : 0

  name   = "dead-letter-queue"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.dlq[0].json
}

resource "aws_lambda_function" "this" {
  function_name    = var.name
  description      = var.description
  role             = aws_iam_role.this.arn
  filename         = var.filename
  source_code_hash = filebase64sha256(var.filename)
  handler          = "bootstrap"
  runtime          = "provided.al2023"
  architectures    = ["arm64"]
  memory_size      = var.memory_mb
  timeout          = var.timeout_seconds

  reserved_concurrent_executions = var.reserved_concurrency
  #checkov:skip=CKV_AWS_115:reserved concurrency is a per-function variable (reserved_concurrency); -1 by default so a small account's pool is not carved up
  #checkov:skip=CKV_AWS_116:a DLQ applies only to asynchronous invocations: created when create_dead_letter_queue (daily); http and transform are synchronous, curate's DLQ is its source queue's redrive policy
  #checkov:skip=CKV_AWS_117:the functions call only public AWS APIs (Kinesis, S3, DynamoDB); a VPC would add NAT or endpoint cost and cold-start latency for no isolation gain
  #checkov:skip=CKV_AWS_173:environment variables hold resource names and limits only (the API key is in SSM Parameter Store); Lambda encrypts them at rest with its AWS managed key
  #checkov:skip=CKV_AWS_272:code signing needs a signing profile and pipeline; the zips are built reproducibly by scripts/build-lambdas
  #checkov:skip=CKV_AWS_50:X-Ray tracing is optional cost; structured JSON logs carry the request ids

  dynamic "environment" {
    for_each = length(var.environment_variables) > 0 ? [var.environment_variables] : []
    content {
      variables = environment.value
    }
  }

  dynamic "dead_letter_config" {
    for_each = var.create_dead_letter_queue ? [aws_sqs_queue.dlq[0].arn] : []
    content {
      target_arn = dead_letter_config.value
    }
  }

  logging_config {
    log_format            = "JSON"
    log_group             = aws_cloudwatch_log_group.this.name
    application_log_level = var.log_level
    system_log_level      = var.system_log_level
  }

  tags = merge(var.tags, { Name = var.name, module = "lambda" })

  depends_on = [aws_iam_role_policy.logs, aws_iam_role_policy.dlq]
}

resource "aws_lambda_function_event_invoke_config" "this" {
  count = var.create_dead_letter_queue ? 1 : 0

  function_name          = aws_lambda_function.this.function_name
  maximum_retry_attempts = var.async_retry_attempts
}
