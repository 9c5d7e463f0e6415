# One role per function (modules/lambda creates it with its log-group policy);
# here one policy document per concern, with exact actions on exact ARNs.
# tests/contract/test_contract.py checks that each role's actions are exactly
# those the function's SDK calls need (README "AWS functions").

# ---- gender-http: Kinesis PutRecords (POST /hits), DynamoDB GetItem (GET /gender,
# /health, GET /erasures) and PutItem (the erasure log entry of DELETE
# /visitors), SQS SendMessage (the erasure queue), SSM GetParameters of its API
# key and of the erasure salt (one call per cold start)

data "aws_iam_policy_document" "http_kinesis" {
  statement {
    sid       = "PutHits"
    actions   = ["kinesis:PutRecords"]
    resources = [module.stream.arn]
  }
}

data "aws_iam_policy_document" "http_dynamodb" {
  statement {
    sid       = "ReadProfilesAndErasures"
    actions   = ["dynamodb:GetItem"]
    resources = [module.profiles.arn]
  }

  # Only items keyed erasure#<id>: an http role that could put any item
  # could overwrite profiles.
  statement {
    sid       = "LogErasures"
    actions   = ["dynamodb:PutItem"]
    resources = [module.profiles.arn]

    condition {
      test     = "ForAllValues:StringLike"
      variable = "dynamodb:LeadingKeys"
      values   = ["erasure#*"]
    }
  }
}

data "aws_iam_policy_document" "http_erasure_queue" {
  statement {
    sid       = "QueueErasures"
    actions   = ["sqs:SendMessage"]
    resources = [module.erase_queue.queue_arn]
  }
}

# Read in the same GetParameters call as the API key (same reasoning about
# aws/ssm): GetParameters is authorised per parameter named in it.
data "aws_iam_policy_document" "http_erasure_salt" {
  statement {
    sid       = "ReadErasureSalt"
    actions   = ["ssm:GetParameters"]
    resources = [aws_ssm_parameter.erasure_salt.arn]
  }
}

# GetParameters (the three keys and the erasure salt in one call, Parameter Store's
# default 40 TPS per account shared with GetParameter) with WithDecryption =
# true. No kms:Decrypt here: the parameter is encrypted with the AWS managed
# key aws/ssm, whose key policy lets principals of the account decrypt
# through SSM; who reads the value is decided by ssm:GetParameters on this
# one parameter.
data "aws_iam_policy_document" "http_api_key" {
  statement {
    sid       = "ReadApiKey"
    actions   = ["ssm:GetParameters"]
    resources = [aws_ssm_parameter.api_key.arn]
  }

  # The scoped keys of SPEC 18, in the same call.
  statement {
    sid       = "ReadIngestKey"
    actions   = ["ssm:GetParameters"]
    resources = [aws_ssm_parameter.ingest_key.arn]
  }

  statement {
    sid       = "ReadReadKey"
    actions   = ["ssm:GetParameters"]
    resources = [aws_ssm_parameter.read_key.arn]
  }
}

# ---- gender-curate: the archive only (the counters are the stream consumer's):
# read (and with keep_raw = false delete) raw objects, write curated Parquet
# (PutObject with If-None-Match), read and replace the deduplication index
# dedup/index of the curated bucket (GetObject, PutObject with If-Match),
# consume its queue. No DynamoDB.

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

  # Conditional writes (If-None-Match, If-Match) need nothing beyond
  # s3:PutObject.
  statement {
    sid       = "DeduplicationIndex"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = ["${module.curated_bucket.arn}/${local.dedup_index_prefix}*"]
  }

  # The first run finds no index: S3 answers a GetObject of a missing key
  # with 404 NoSuchKey only to a caller that may list the bucket, 403
  # otherwise (as for raw objects above).
  statement {
    sid       = "MissingIndexIsNotFound"
    actions   = ["s3:ListBucket"]
    resources = [module.curated_bucket.arn]
  }
}

data "aws_iam_policy_document" "curate_queue" {
  statement {
    sid       = "ConsumeCurateQueue"
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
    resources = [module.curate_trigger.queue_arn]
  }
}

# ---- gender-consumer: the event source mapping reads the hits stream with the
# function's role; the function reads the visitors' counting state
# (BatchGetItem, consistent) and writes each visitor once per batch
# (conditional UpdateItem); poison records, and the ranges the mapping
# discards, go to its dead-letter queue.

# What Lambda documents for a Kinesis event source mapping (standard
# iterator): DescribeStream, DescribeStreamSummary, GetRecords,
# GetShardIterator, ListShards. Not SubscribeToShard (enhanced fan-out
# consumers only) nor ListStreams (the mapping names its stream; the action
# takes no stream ARN). No kms:Decrypt: the stream is encrypted with the AWS
# managed key aws/kinesis, which needs no IAM grant (as for Firehose's role).
data "aws_iam_policy_document" "consumer_stream" {
  statement {
    sid       = "ReadHitsStream"
    actions   = ["kinesis:DescribeStream", "kinesis:DescribeStreamSummary", "kinesis:GetRecords", "kinesis:GetShardIterator", "kinesis:ListShards"]
    resources = [module.stream.arn]
  }
}

data "aws_iam_policy_document" "consumer_dynamodb" {
  statement {
    sid       = "CountVisitors"
    actions   = ["dynamodb:BatchGetItem", "dynamodb:UpdateItem"]
    resources = [module.profiles.arn]
  }
}

# The function's own SendMessage of poison records and the mapping's
# on-failure destination (which sends with the function's role) alike.
data "aws_iam_policy_document" "consumer_dead_letter" {
  statement {
    sid       = "DeadLetters"
    actions   = ["sqs:SendMessage"]
    resources = [module.consumer_trigger.dlq_arn]
  }
}

# ---- gender-daily: list and read curated hits and rollups, write rollups and
# the record of the window applied (curated/daily/); UpdateItem the windowed
# visitors (no Scan: the writes are derived from the rollups); its lease item;
# invoke itself asynchronously to carry a long run on.

data "aws_iam_policy_document" "daily_curated" {
  statement {
    sid       = "ListCuratedHitsAndRollups"
    actions   = ["s3:ListBucket"]
    resources = [module.curated_bucket.arn]

    # A missing rollup or record then reads as 404, not 403.
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["curated/hits/*", "curated/daily/*"]
    }
  }

  statement {
    sid       = "ReadCuratedHitsAndRollups"
    actions   = ["s3:GetObject"]
    resources = ["${module.curated_bucket.arn}/curated/hits/*", "${module.curated_bucket.arn}/curated/daily/*"]
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
    actions   = ["dynamodb:UpdateItem"]
    resources = [module.profiles.arn]
  }

  statement {
    sid       = "DailyLease"
    actions   = ["dynamodb:PutItem", "dynamodb:DeleteItem"]
    resources = [module.profiles.arn]

    condition {
      test     = "ForAllValues:StringEquals"
      variable = "dynamodb:LeadingKeys"
      values   = ["#lease#daily"]
    }
  }
}

# Its own ARN from its name: referring to module.daily here would make the
# function's role depend on the function.
data "aws_iam_policy_document" "daily_continue" {
  statement {
    sid       = "InvokeItselfAsynchronously"
    actions   = ["lambda:InvokeFunction"]
    resources = ["arn:aws:lambda:${var.region}:${local.account_id}:function:${local.name}-daily"]
  }
}

# ---- gender-erase: read erasure entries, delete profiles and complete entries
# (DynamoDB); find the visitors' objects with Athena, which reads the Glue
# tables and the curated objects and writes its results with this role's
# permissions; rewrite curated hits and rollups; consume its queue.
# No SSM: the salted hash is computed by gender-http when the request comes.

data "aws_iam_policy_document" "erase_dynamodb" {
  statement {
    sid       = "ErasureEntriesAndProfiles"
    actions   = ["dynamodb:GetItem", "dynamodb:DeleteItem", "dynamodb:UpdateItem"]
    resources = [module.profiles.arn]
  }
}

data "aws_iam_policy_document" "erase_curated" {
  # Athena lists the dt= partitions it reads. A GetObject of a key that
  # expired since the query then answers 403 rather than 404 (a conditioned
  # ListBucket does not count for that check): the batch is retried and the
  # next query no longer finds the key.
  statement {
    sid       = "ListCurated"
    actions   = ["s3:ListBucket"]
    resources = [module.curated_bucket.arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["curated/hits/*", "curated/daily/*"]
    }
  }

  statement {
    sid       = "RewriteCurated"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = ["${module.curated_bucket.arn}/curated/hits/*", "${module.curated_bucket.arn}/curated/daily/*"]
  }
}

data "aws_iam_policy_document" "erase_athena" {
  statement {
    sid       = "FindVisitors"
    actions   = ["athena:StartQueryExecution", "athena:GetQueryExecution", "athena:GetQueryResults", "athena:StopQueryExecution"]
    resources = [aws_athena_workgroup.erase.arn]
  }
}

data "aws_iam_policy_document" "erase_glue" {
  statement {
    sid     = "ReadTables"
    actions = ["glue:GetDatabase", "glue:GetTable"]
    resources = [
      "arn:aws:glue:${var.region}:${local.account_id}:catalog",
      module.glue.database_arn,
      module.glue.table_arns["hits"],
      module.glue.table_arns["daily"],
    ]
  }
}

# Athena writes the query's results (object paths) to the workgroup's
# location and GetQueryResults reads them back, both as this role.
data "aws_iam_policy_document" "erase_results" {
  statement {
    sid       = "ResultsBucket"
    actions   = ["s3:GetBucketLocation"]
    resources = [module.curated_bucket.arn]
  }

  statement {
    sid       = "QueryResults"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"]
    resources = ["${module.curated_bucket.arn}/${local.erasure_results_prefix}*"]
  }
}

data "aws_iam_policy_document" "erase_queue" {
  statement {
    sid       = "ConsumeErasureQueue"
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
    resources = [module.erase_queue.queue_arn]
  }
}
