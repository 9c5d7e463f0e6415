# One role per function (modules/lambda creates it with its log-group policy);
# here one policy document per concern, with exact actions on exact ARNs.
# tests/contract/test_contract.py checks that each role's actions are exactly
# those the function's SDK calls need (README "AWS functions").

# ---- gender-http: Kinesis PutRecords (POST /hits), DynamoDB GetItem (GET /gender,
# /health), SSM GetParameter of its API key (cold start)

data "aws_iam_policy_document" "http_kinesis" {
  statement {
    sid       = "PutHits"
    actions   = ["kinesis:PutRecords"]
    resources = [module.stream.arn]
  }
}

data "aws_iam_policy_document" "http_dynamodb" {
  statement {
    sid       = "ReadProfiles"
    actions   = ["dynamodb:GetItem"]
    resources = [module.profiles.arn]
  }
}

# GetParameter with WithDecryption = true. No kms:Decrypt here: the parameter
# is encrypted with the AWS managed key aws/ssm, whose key policy lets
# principals of the account decrypt through SSM; who reads the value is
# decided by ssm:GetParameter on this one parameter.
data "aws_iam_policy_document" "http_api_key" {
  statement {
    sid       = "ReadApiKey"
    actions   = ["ssm:GetParameter"]
    resources = [aws_ssm_parameter.api_key.arn]
  }
}

# ---- gender-curate: read (and with keep_raw = false delete) raw objects, write
# curated Parquet, apply counters (TransactWriteItems = Put marker + Update
# counters; then UpdateItem for last_gender/last_seen), read chunk markers and
# the visitors' deduplication state (BatchGetItem, SPEC 15), consume its queue.

data "aws_iam_policy_document" "curate_raw" {
  statement {
    sid       = "ReadRaw"
    actions   = ["s3:GetObject"]
    resources = ["${module.raw_bucket.arn}/raw/*"]
  }

  # A GetObject of a missing key answers 404 NoSuchKey (which curate treats as
  # "already curated and deleted") only to a caller that may list the bucket;
  # otherwise S3 answers 403 and the message would end in the dead-letter queue.
  # No s3:prefix condition: a GetObject request carries no prefix, so a
  # conditioned ListBucket would not count for this check.
  statement {
    sid       = "MissingRawIsNotFound"
    actions   = ["s3:ListBucket"]
    resources = [module.raw_bucket.arn]
  }

  dynamic "statement" {
    for_each = var.keep_raw ? [] : ["delete"]

    content {
      sid       = "DeleteCuratedRaw"
      actions   = ["s3:DeleteObject"]
      resources = ["${module.raw_bucket.arn}/raw/*"]
    }
  }
}

data "aws_iam_policy_document" "curate_curated" {
  statement {
    sid       = "WriteCuratedHits"
    actions   = ["s3:PutObject"]
    resources = ["${module.curated_bucket.arn}/curated/hits/*"]
  }
}

data "aws_iam_policy_document" "curate_dynamodb" {
  statement {
    sid       = "ApplyCounters"
    actions   = ["dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
    resources = [module.profiles.arn]
  }
}

data "aws_iam_policy_document" "curate_queue" {
  statement {
    sid       = "ConsumeCurateQueue"
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
    resources = [module.curate_trigger.queue_arn]
  }
}

# ---- gender-daily: list and read curated hits, write daily rollups, Scan for
# visitors with a window and UpdateItem their window.

data "aws_iam_policy_document" "daily_curated" {
  statement {
    sid       = "ListCuratedHits"
    actions   = ["s3:ListBucket"]
    resources = [module.curated_bucket.arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["curated/hits/*"]
    }
  }

  statement {
    sid       = "ReadCuratedHits"
    actions   = ["s3:GetObject"]
    resources = ["${module.curated_bucket.arn}/curated/hits/*"]
  }

  statement {
    sid       = "WriteDailyRollups"
    actions   = ["s3:PutObject"]
    resources = ["${module.curated_bucket.arn}/curated/daily/*"]
  }
}

data "aws_iam_policy_document" "daily_dynamodb" {
  statement {
    sid       = "WindowProfiles"
    actions   = ["dynamodb:Scan", "dynamodb:UpdateItem"]
    resources = [module.profiles.arn]
  }
}
