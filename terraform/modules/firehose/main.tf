resource "aws_cloudwatch_log_group" "this" {
  name              = "/aws/kinesisfirehose/${var.name}"
  retention_in_days = var.log_retention_days
  #checkov:skip=CKV_AWS_158:delivery error logs use CloudWatch Logs' default encryption at rest
  #checkov:skip=CKV_AWS_338:retention is a variable (default 30 days): operational logs, not an audit record

  tags = merge(var.tags, { Name = var.name, module = "firehose" })
}

resource "aws_cloudwatch_log_stream" "delivery" {
  name           = "DestinationDelivery"
  log_group_name = aws_cloudwatch_log_group.this.name
}

resource "aws_cloudwatch_log_stream" "backup" {
  name           = "BackupDelivery"
  log_group_name = aws_cloudwatch_log_group.this.name
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["firehose.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "this" {
  name               = "${var.name}-firehose"
  assume_role_policy = data.aws_iam_policy_document.assume.json

  tags = merge(var.tags, { Name = "${var.name}-firehose", module = "firehose" })
}

# Concern: read the source stream.
data "aws_iam_policy_document" "source" {
  statement {
    sid       = "ReadSourceStream"
    actions   = ["kinesis:DescribeStream", "kinesis:GetShardIterator", "kinesis:GetRecords", "kinesis:ListShards"]
    resources = [var.stream_arn]
  }
}

# Concern: write the raw and backup buckets (the actions Firehose documents for S3 destinations).
data "aws_iam_policy_document" "destination" {
  statement {
    sid       = "Buckets"
    actions   = ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"]
    resources = [var.raw_bucket_arn, var.backup_bucket_arn]
  }

  statement {
    sid       = "Objects"
    actions   = ["s3:AbortMultipartUpload", "s3:GetObject", "s3:PutObject"]
    resources = ["${var.raw_bucket_arn}/*", "${var.backup_bucket_arn}/*"]
  }
}

# Concern: call the transform function.
data "aws_iam_policy_document" "transform" {
  statement {
    sid       = "InvokeTransform"
    actions   = ["lambda:InvokeFunction", "lambda:GetFunctionConfiguration"]
    resources = [var.transform_function_arn, "${var.transform_function_arn}:*"]
  }
}

# Concern: its own error log streams.
data "aws_iam_policy_document" "logs" {
  statement {
    sid       = "DeliveryErrorLogs"
    actions   = ["logs:PutLogEvents"]
    resources = [aws_cloudwatch_log_stream.delivery.arn, aws_cloudwatch_log_stream.backup.arn]
  }
}

resource "aws_iam_role_policy" "source" {
  name   = "source"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.source.json
}

resource "aws_iam_role_policy" "destination" {
  name   = "destination"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.destination.json
}

resource "aws_iam_role_policy" "transform" {
  name   = "transform"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.transform.json
}

resource "aws_iam_role_policy" "logs" {
  name   = "logs"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.logs.json
}

resource "aws_kinesis_firehose_delivery_stream" "this" {
  name        = var.name
  destination = "extended_s3"
  #checkov:skip=CKV_AWS_240:server-side encryption of a delivery stream applies to Direct PUT sources only; the source stream is KMS-encrypted and the buckets are SSE-S3
  #checkov:skip=CKV_AWS_241:see CKV_AWS_240: no delivery stream SSE with a Kinesis source

  kinesis_source_configuration {
    kinesis_stream_arn = var.stream_arn
    role_arn           = aws_iam_role.this.arn
  }

  extended_s3_configuration {
    role_arn   = aws_iam_role.this.arn
    bucket_arn = var.raw_bucket_arn

    # SPEC 5: raw/dt=YYYY-MM-DD/<unique name>, plain NDJSON (curate reads it uncompressed).
    # Records Firehose cannot deliver there (ProcessingFailed from the
    # transform, more than 500 active dt partitions, S3 failures after the
    # retry duration) go to the error prefix, by error type.
    prefix              = "raw/dt=!{partitionKeyFromLambda:dt}/"
    error_output_prefix = "${var.error_prefix}!{firehose:error-output-type}/dt=!{timestamp:yyyy-MM-dd}/"
    compression_format  = "UNCOMPRESSED"
    buffering_interval  = var.buffering_interval_seconds
    buffering_size      = var.buffering_size_mb

    dynamic_partitioning_configuration {
      enabled        = true
      retry_duration = 300
    }

    processing_configuration {
      enabled = true

      processors {
        type = "Lambda"

        parameters {
          parameter_name  = "LambdaArn"
          parameter_value = "${var.transform_function_arn}:$LATEST"
        }

        # How much record data Firehose collects before one transform
        # invocation. The request carries each record base64-encoded (4/3)
        # in a JSON envelope with its Kinesis metadata (~0.5 KB), so small
        # records grow it ~10x: at the default 1 MB, 60-byte hits would make
        # a ~10 MB request, over Lambda's 6 MB synchronous payload limit.
        # docs/DEPLOY.md ("The transform's invocation size") has the bound.
        parameters {
          parameter_name  = "BufferSizeInMBs"
          parameter_value = tostring(var.processor_buffer_size_mb)
        }

        parameters {
          parameter_name  = "BufferIntervalInSeconds"
          parameter_value = tostring(var.processor_buffer_interval_seconds)
        }
      }
    }

    s3_backup_mode = "Enabled"

    s3_backup_configuration {
      role_arn            = aws_iam_role.this.arn
      bucket_arn          = var.backup_bucket_arn
      prefix              = "source/dt=!{timestamp:yyyy-MM-dd}/"
      error_output_prefix = "${var.error_prefix}!{firehose:error-output-type}/dt=!{timestamp:yyyy-MM-dd}/"
      compression_format  = "GZIP"
      buffering_interval  = 300
      buffering_size      = 64

      cloudwatch_logging_options {
        enabled         = true
        log_group_name  = aws_cloudwatch_log_group.this.name
        log_stream_name = aws_cloudwatch_log_stream.backup.name
      }
    }

    cloudwatch_logging_options {
      enabled         = true
      log_group_name  = aws_cloudwatch_log_group.this.name
      log_stream_name = aws_cloudwatch_log_stream.delivery.name
    }
  }

  tags = merge(var.tags, { Name = var.name, module = "firehose" })

  depends_on = [
    aws_iam_role_policy.source,
    aws_iam_role_policy.destination,
    aws_iam_role_policy.transform,
    aws_iam_role_policy.logs,
  ]
}
