variable "project" {
  description = "Project name: first part of every resource name."
  type        = string
  default     = "gender"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,15}$", var.project))
    error_message = "project must be 2..16 characters of a-z, 0-9 and '-', starting with a letter (it goes into bucket and function names)."
  }
}

variable "environment" {
  description = "Environment name (dev, staging, prod, ...): second part of every resource name, so two stacks coexist in one account."
  type        = string
  default     = "dev"

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,9}$", var.environment))
    error_message = "environment must be 2..10 characters of a-z and 0-9, starting with a letter."
  }
}

variable "region" {
  description = "AWS region of the stack."
  type        = string
  default     = "us-east-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-\\d$", var.region))
    error_message = "region must look like us-east-1."
  }
}

variable "tags" {
  description = "Extra tags for every resource."
  type        = map(string)
  default     = {}
}

variable "lambda_artifacts_dir" {
  description = "Directory of the cargo-lambda zips (<dir>/<binary>/bootstrap.zip); scripts/build-lambdas writes target/lambda."
  type        = string
  default     = null
}

variable "kinesis_stream_mode" {
  description = "Hits stream capacity mode: ON_DEMAND (default) or PROVISIONED."
  type        = string
  default     = "ON_DEMAND"

  validation {
    condition     = contains(["ON_DEMAND", "PROVISIONED"], var.kinesis_stream_mode)
    error_message = "kinesis_stream_mode must be ON_DEMAND or PROVISIONED."
  }
}

variable "kinesis_shard_count" {
  description = "Shards of the hits stream when kinesis_stream_mode = PROVISIONED."
  type        = number
  default     = 2

  validation {
    condition     = var.kinesis_shard_count >= 1 && floor(var.kinesis_shard_count) == var.kinesis_shard_count
    error_message = "kinesis_shard_count must be a whole number >= 1."
  }
}

variable "keep_raw" {
  description = "Keep raw objects after curate (KEEP_RAW); false deletes each one after its Parquet is written (and grants curate s3:DeleteObject); the counters come from the stream, not from raw objects."
  type        = bool
  default     = true
}

variable "dedup_horizon_seconds" {
  description = "Deduplication horizon (DEDUP_HORIZON_SECONDS of the stream consumer and of curate, SPEC 15): a hit whose (clientid, hitid) was counted within this many seconds is not counted again (consumer) nor written again to the curated Parquet (curate); 0 turns deduplication off. Keep it longer than the longest retry or redelivery window (producer resends, PutRecords retries, the consumer's retries up to consumer_maximum_record_age_seconds, Firehose retries, SQS redeliveries). See docs/DEPLOY.md, deduplication."
  type        = number
  default     = 3600

  validation {
    condition     = var.dedup_horizon_seconds >= 0 && var.dedup_horizon_seconds <= 604800 && floor(var.dedup_horizon_seconds) == var.dedup_horizon_seconds
    error_message = "dedup_horizon_seconds must be a whole number of seconds from 0 (off) to 604800 (7 days)."
  }
}

variable "raw_expiration_days" {
  description = "Expire raw objects (and Firehose error records) after this many days; null keeps them."
  type        = number
  default     = 90

  validation {
    condition     = var.raw_expiration_days == null || try(var.raw_expiration_days >= 1, false)
    error_message = "raw_expiration_days must be null or >= 1."
  }
}

variable "curated_hits_expiration_days" {
  description = "Expire curated hits (curated/hits/) this many days after they were written; null keeps them. At least 8: the daily job reads the last 7 days."
  type        = number
  default     = 400

  validation {
    condition     = var.curated_hits_expiration_days == null || try(var.curated_hits_expiration_days >= 8, false)
    error_message = "curated_hits_expiration_days must be null or >= 8."
  }
}

variable "daily_rollups_expiration_days" {
  description = "Expire daily rollups (curated/daily/) this many days after they were written; null keeps them. At least 8: the daily job merges the last 7."
  type        = number
  default     = 400

  validation {
    condition     = var.daily_rollups_expiration_days == null || try(var.daily_rollups_expiration_days >= 8, false)
    error_message = "daily_rollups_expiration_days must be null or >= 8."
  }
}

variable "backup_expiration_days" {
  description = "Expire Firehose source backups after this many days (they move to Glacier Instant Retrieval after 30)."
  type        = number
  default     = 365

  validation {
    condition     = var.backup_expiration_days >= 31
    error_message = "backup_expiration_days must be >= 31 (objects move to GLACIER_IR at 30 days)."
  }
}

variable "force_destroy" {
  description = "Let terraform destroy delete buckets that still hold objects (every version). Off by default to protect data."
  type        = bool
  default     = false
}

variable "firehose_buffering_interval_seconds" {
  description = "Seconds Firehose buffers before writing a raw object (60..900: zero buffering is not available with dynamic partitioning)."
  type        = number
  default     = 60

  validation {
    condition     = var.firehose_buffering_interval_seconds >= 60 && var.firehose_buffering_interval_seconds <= 900
    error_message = "firehose_buffering_interval_seconds must be between 60 and 900: zero buffering is not available with dynamic partitioning."
  }
}

variable "firehose_buffering_size_mb" {
  description = "MB Firehose buffers before writing a raw object (64..128: the dynamic partitioning minimum is 64)."
  type        = number
  default     = 64

  validation {
    condition     = var.firehose_buffering_size_mb >= 64 && var.firehose_buffering_size_mb <= 128
    error_message = "firehose_buffering_size_mb must be between 64 and 128."
  }
}

variable "firehose_processor_buffer_size_mb" {
  description = "MB of record data Firehose buffers before one transform invocation (0.2..3, not 1). The invocation carries each record base64-encoded with ~0.5 KB of Kinesis metadata, so it must stay under Lambda's 6 MB synchronous payload limit for the smallest records: 0.25 MB gives at most ~2.6 MB (docs/DEPLOY.md, \"The transform's invocation size\")."
  type        = number
  default     = 0.25

  validation {
    condition     = var.firehose_processor_buffer_size_mb >= 0.2 && var.firehose_processor_buffer_size_mb <= 0.5 && var.firehose_processor_buffer_size_mb != 1
    error_message = "firehose_processor_buffer_size_mb must be between 0.2 and 0.5: above 0.5 MB an invocation of the smallest records (one hit each) can exceed Lambda's 6 MB payload limit (docs/DEPLOY.md)."
  }
}

variable "firehose_processor_buffer_interval_seconds" {
  description = "Seconds Firehose waits for the processor buffer to fill before invoking the transform anyway (0..900, not 60: Firehose's default, which the provider drops from its state, a change on every plan)."
  type        = number
  default     = 10

  validation {
    condition     = var.firehose_processor_buffer_interval_seconds >= 0 && var.firehose_processor_buffer_interval_seconds <= 900 && floor(var.firehose_processor_buffer_interval_seconds) == var.firehose_processor_buffer_interval_seconds && var.firehose_processor_buffer_interval_seconds != 60
    error_message = "firehose_processor_buffer_interval_seconds must be a whole number from 0 to 900, and not 60 (Firehose's default, which the provider does not keep: a perpetual diff)."
  }
}

variable "lambda_memory_mb" {
  description = "Memory (MB) per function: http, transform, consumer, curate, daily, erase. The consumer's 256 MB: a batch of up to 1,000 records and its visitors' counting state (items under a few KB) take a few MB, and the invocation waits on DynamoDB, not on CPU; raise it if platform.report shows durations near the timeout. The daily job's 2,048 MB: its measured peak at 1,000 hits/s is 348 MiB (rebuilding one date's rollup), so about 4x headroom, and 2 GB gives its single-threaded rebuild a full vCPU."
  type        = object({ http = number, transform = number, consumer = optional(number, 256), curate = number, daily = number, erase = optional(number, 2048) })
  default     = { http = 256, transform = 256, consumer = 256, curate = 1024, daily = 2048, erase = 2048 }

  validation {
    condition     = alltrue([for m in values(var.lambda_memory_mb) : m >= 128 && m <= 10240])
    error_message = "Each memory size must be between 128 and 10240 MB."
  }
}

variable "lambda_timeout_seconds" {
  description = "Timeout (s) per function: http (below API Gateway's 30 s integration timeout, so a slow request ends in the function's JSON 503 or Lambda's error before API Gateway gives up), transform (Firehose waits 5 min at most), consumer (a batch takes well under a second; 60 s covers a throttled table's retries, each SDK operation bounded to 6 s, and a batch that still times out is split in two and retried by the mapping), curate, daily, erase."
  type        = object({ http = number, transform = number, consumer = optional(number, 60), curate = number, daily = number, erase = optional(number, 900) })
  default     = { http = 29, transform = 120, consumer = 60, curate = 300, daily = 900, erase = 900 }

  validation {
    condition = (
      var.lambda_timeout_seconds.http >= 1 && var.lambda_timeout_seconds.http <= 29 &&
      var.lambda_timeout_seconds.transform >= 1 && var.lambda_timeout_seconds.transform <= 300 &&
      var.lambda_timeout_seconds.consumer >= 10 && var.lambda_timeout_seconds.consumer <= 900 &&
      var.lambda_timeout_seconds.curate >= 1 && var.lambda_timeout_seconds.curate <= 900 &&
      var.lambda_timeout_seconds.daily >= 120 && var.lambda_timeout_seconds.daily <= 900 &&
      var.lambda_timeout_seconds.erase >= 120 && var.lambda_timeout_seconds.erase <= 900
    )
    error_message = "Timeouts: http 1..29, transform 1..300, consumer 10..900 (one SDK operation may take 6 s), curate 1..900, daily and erase 120..900 seconds (both stop starting work 60 s before their deadline)."
  }
}

variable "lambda_reserved_concurrency" {
  description = "Reserved concurrency per function (-1 = unreserved)."
  type        = object({ http = number, transform = number, consumer = optional(number, -1), curate = number, daily = number, erase = optional(number, -1) })
  default     = { http = -1, transform = -1, consumer = -1, curate = -1, daily = -1, erase = -1 }

  validation {
    condition     = alltrue([for c in values(var.lambda_reserved_concurrency) : c >= -1 && floor(c) == c])
    error_message = "Each reserved concurrency must be a whole number >= -1."
  }
}

variable "lambda_system_log_level" {
  description = "Level of Lambda's platform log records per function (DEBUG, INFO, WARN). INFO keeps each invocation's platform.report record (duration, billed duration, max memory used, init duration), which the background functions need for sizing; http keeps WARN by default because it is invoked per request (docs/DEPLOY.md, Logs)."
  type = object({
    http      = optional(string, "WARN")
    transform = optional(string, "INFO")
    consumer  = optional(string, "INFO")
    curate    = optional(string, "INFO")
    daily     = optional(string, "INFO")
    erase     = optional(string, "INFO")
  })
  default = {}

  validation {
    condition     = alltrue([for l in values(var.lambda_system_log_level) : contains(["DEBUG", "INFO", "WARN"], l)])
    error_message = "Each system log level must be DEBUG, INFO or WARN."
  }
}

variable "log_retention_days" {
  description = "Retention of every log group (functions, API access logs, Firehose errors), in days."
  type        = number
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be one of the values CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, ...)."
  }
}

variable "log_level" {
  description = "Application log level of the functions, one of the values Lambda accepts (TRACE, DEBUG, INFO, WARN, ERROR, FATAL). The functions have no level above ERROR: they treat FATAL as ERROR, and Lambda, which forwards only lines at the chosen level or above, then drops those, so FATAL silences application logs (docs/DEPLOY.md)."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"], var.log_level)
    error_message = "log_level must be TRACE, DEBUG, INFO, WARN, ERROR or FATAL."
  }
}

variable "max_body_bytes" {
  description = "Largest POST /hits body the http function accepts (MAX_BODY_BYTES), in bytes; larger bodies get a JSON 413. Default 4 MiB, not SPEC 3's 5 MiB: API Gateway may base64-encode the body into the Lambda event (4/3 larger) and a synchronous invocation carries at most 6 MB, so 4 MiB (5,592,408 bytes base64) plus the event envelope is the most that fits."
  type        = number
  default     = 4194304

  validation {
    condition     = var.max_body_bytes >= 1024 && var.max_body_bytes <= 4194304 && floor(var.max_body_bytes) == var.max_body_bytes
    error_message = "max_body_bytes must be a whole number between 1024 and 4194304 (4 MiB): a larger body, base64-encoded by API Gateway, plus the event envelope would exceed Lambda's 6 MB synchronous payload limit and be rejected before the function runs."
  }
}

variable "api_throttling_burst_limit" {
  description = "API Gateway default route burst limit."
  type        = number
  default     = 2000

  validation {
    condition     = var.api_throttling_burst_limit >= 0
    error_message = "api_throttling_burst_limit must be >= 0."
  }
}

variable "api_throttling_rate_limit" {
  description = "API Gateway default route rate limit (requests per second)."
  type        = number
  default     = 1000

  validation {
    condition     = var.api_throttling_rate_limit >= 0
    error_message = "api_throttling_rate_limit must be >= 0."
  }
}

variable "cors_allow_origins" {
  description = "Origins (scheme://host[:port]) whose pages may POST /hits from the browser (SPEC 18, tracker.js): the HTTP API answers their preflights (cors_configuration: POST, content-type and x-api-key, Retry-After exposed) and gender-http refuses POST /hits from other origins. Empty (default): no CORS, nothing changes for server-side producers. \"*\" allows every origin."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for o in var.cors_allow_origins : o == "*" || can(regex("^https?://[^/*?#@ ]+$", o))])
    error_message = "cors_allow_origins: each origin must be \"*\" or scheme://host[:port], without a path or a trailing slash."
  }
}

variable "http_function_url" {
  description = "The browser front door: a Lambda function URL for gender-http beside the HTTP API (authorization NONE: the function checks x-api-key itself), with CORS for the pages' origins. Pages that send one hit per request pay only the Lambda invocation there, not API Gateway's per-request charge (docs/DEPLOY.md)."
  type = object({
    enabled              = bool
    cors_allow_origins   = optional(list(string), [])
    cors_max_age_seconds = optional(number, 600)
  })
  default = { enabled = false }

  validation {
    condition     = alltrue([for o in var.http_function_url.cors_allow_origins : o == "*" || can(regex("^https?://[^/*]+$", o))])
    error_message = "http_function_url.cors_allow_origins: each origin must be \"*\" or scheme://host[:port], without a path."
  }
}

variable "api_5xx_percent_threshold" {
  description = "Alarm when more than this percent of the HTTP API's requests answer 5xx over 5 minutes."
  type        = number
  default     = 1

  validation {
    condition     = var.api_5xx_percent_threshold > 0 && var.api_5xx_percent_threshold <= 100
    error_message = "api_5xx_percent_threshold must be in (0, 100]."
  }
}

variable "api_latency_p99_threshold_ms" {
  description = "Alarm when the HTTP API's p99 Latency or IntegrationLatency stays above this (ms) in 2 of 3 periods of 5 minutes."
  type        = number
  default     = 1000

  validation {
    condition     = var.api_latency_p99_threshold_ms > 0 && var.api_latency_p99_threshold_ms <= 30000
    error_message = "api_latency_p99_threshold_ms must be in (0, 30000]."
  }
}

variable "dynamodb_capacity_mode" {
  description = "Profiles table capacity: ON_DEMAND (default: nothing to size, follows any traffic shape) or PROVISIONED (cheaper per unit for steady traffic; capacity units kept at dynamodb_provisioned_capacity's target utilization by Application Auto Scaling)."
  type        = string
  default     = "ON_DEMAND"

  validation {
    condition     = contains(["ON_DEMAND", "PROVISIONED"], var.dynamodb_capacity_mode)
    error_message = "dynamodb_capacity_mode must be ON_DEMAND or PROVISIONED."
  }
}

variable "dynamodb_provisioned_capacity" {
  description = "With dynamodb_capacity_mode = PROVISIONED: auto scaling range of the table's read and write capacity units (min..max) and the utilization (%) auto scaling keeps them at."
  type = object({
    read_min                   = number
    read_max                   = number
    write_min                  = number
    write_max                  = number
    target_utilization_percent = optional(number, 70)
  })
  default = { read_min = 5, read_max = 4000, write_min = 5, write_max = 4000, target_utilization_percent = 70 }

  validation {
    condition = (
      var.dynamodb_provisioned_capacity.read_min >= 1 && var.dynamodb_provisioned_capacity.read_min <= var.dynamodb_provisioned_capacity.read_max &&
      var.dynamodb_provisioned_capacity.write_min >= 1 && var.dynamodb_provisioned_capacity.write_min <= var.dynamodb_provisioned_capacity.write_max &&
      var.dynamodb_provisioned_capacity.read_max <= 40000 && var.dynamodb_provisioned_capacity.write_max <= 40000 &&
      var.dynamodb_provisioned_capacity.target_utilization_percent >= 20 && var.dynamodb_provisioned_capacity.target_utilization_percent <= 90
    )
    error_message = "dynamodb_provisioned_capacity: 1 <= min <= max <= 40000 for read and write (the default per-table quota), target_utilization_percent 20..90."
  }
}

variable "dynamodb_warm_throughput" {
  description = "Read and write units per second the profiles table can serve at once (warm throughput); null leaves DynamoDB's own. E.g. { read_units_per_second = 12000, write_units_per_second = 12000 } before the first daily run at 1,000 hits/s (docs/DEPLOY.md, the daily job). DynamoDB only raises it."
  type = object({
    read_units_per_second  = number
    write_units_per_second = number
  })
  default = null

  validation {
    condition     = var.dynamodb_warm_throughput == null || try(var.dynamodb_warm_throughput.read_units_per_second >= 1 && var.dynamodb_warm_throughput.write_units_per_second >= 1, false)
    error_message = "dynamodb_warm_throughput must be null or positive read and write units per second."
  }
}

variable "dynamodb_transaction_conflict_threshold" {
  description = "Alarm when more item requests than this are rejected in 5 minutes for meeting a transaction on the same item (TransactionConflict on the profiles table)."
  type        = number
  default     = 0

  validation {
    condition     = var.dynamodb_transaction_conflict_threshold >= 0
    error_message = "dynamodb_transaction_conflict_threshold must be >= 0."
  }
}

variable "daily_schedule_expression" {
  description = "When the daily job runs (UTC); it processes the day before."
  type        = string
  default     = "cron(0 1 * * ? *)"

  validation {
    condition     = can(regex("^(cron|rate)\\(.+\\)$", var.daily_schedule_expression))
    error_message = "daily_schedule_expression must be cron(...) or rate(...)."
  }
}

variable "consumer_starting_position" {
  description = "Where the stream consumer's event source mapping starts reading when it is created: TRIM_HORIZON (default: the oldest record the stream keeps, so a new stack counts every hit answered 202 since the stream exists, even those accepted while the mapping was still starting), LATEST, or AT_TIMESTAMP (consumer_starting_position_timestamp). Changing it replaces the mapping, which then reads again from that position (docs/DEPLOY.md, \"The stream consumer\")."
  type        = string
  default     = "TRIM_HORIZON"

  validation {
    condition     = contains(["TRIM_HORIZON", "LATEST", "AT_TIMESTAMP"], var.consumer_starting_position)
    error_message = "consumer_starting_position must be TRIM_HORIZON, LATEST or AT_TIMESTAMP."
  }
}

variable "consumer_starting_position_timestamp" {
  description = "With consumer_starting_position = AT_TIMESTAMP: the RFC 3339 time the new mapping starts reading from (a few minutes before a planned replacement); ignored otherwise."
  type        = string
  default     = null

  validation {
    condition     = var.consumer_starting_position != "AT_TIMESTAMP" || can(formatdate("YYYY", var.consumer_starting_position_timestamp))
    error_message = "consumer_starting_position = AT_TIMESTAMP needs consumer_starting_position_timestamp as an RFC 3339 time (2026-11-24T10:00:00Z)."
  }
}

variable "consumer_batch_size" {
  description = "Most stream records per consumer invocation (1..10000). With consumer_batching_window_seconds = 0 a batch holds what one poll of a shard finds (about a second of it), so this bounds the batches of a backlog: 1000 records (about 0.5 MB of event, under Lambda's 6 MB) are written in a few hundred ms."
  type        = number
  default     = 1000

  validation {
    condition     = var.consumer_batch_size >= 1 && var.consumer_batch_size <= 10000 && floor(var.consumer_batch_size) == var.consumer_batch_size
    error_message = "consumer_batch_size must be a whole number from 1 to 10000."
  }
}

variable "consumer_batching_window_seconds" {
  description = "The consumer's freshness/cost dial (0..300 s): how long the mapping gathers a shard's records before invoking. 0 (default) invokes as soon as a poll (one a second per shard) finds records: hits are visible about a second after their 202. A longer window adds up to that many seconds and makes fewer invocations, each billed, and fewer DynamoDB writes, one per visitor per batch whatever its number of hits (docs/DEPLOY.md, \"The stream consumer\")."
  type        = number
  default     = 0

  validation {
    condition     = var.consumer_batching_window_seconds >= 0 && var.consumer_batching_window_seconds <= 300 && floor(var.consumer_batching_window_seconds) == var.consumer_batching_window_seconds
    error_message = "consumer_batching_window_seconds must be a whole number from 0 to 300."
  }
}

variable "consumer_parallelization_factor" {
  description = "Batches the consumer processes at once per shard (1..10). Lambda keeps the records of one partition key, one visitor, in order for any factor; raise it when one invocation per shard cannot keep up (consumer iterator-age alarm)."
  type        = number
  default     = 1

  validation {
    condition     = var.consumer_parallelization_factor >= 1 && var.consumer_parallelization_factor <= 10 && floor(var.consumer_parallelization_factor) == var.consumer_parallelization_factor
    error_message = "consumer_parallelization_factor must be a whole number from 1 to 10."
  }
}

variable "consumer_maximum_retry_attempts" {
  description = "Retries of a consumer batch that reported a failure (from its first failed record; the function has already retried each call with backoff) before the mapping sends the rest of the batch's range to <name>-consumer-dlq and goes on (0..10000). Bounded, so one visitor's failing item does not hold the shard's other visitors back until the record age bound."
  type        = number
  default     = 10

  validation {
    condition     = var.consumer_maximum_retry_attempts >= 0 && var.consumer_maximum_retry_attempts <= 10000 && floor(var.consumer_maximum_retry_attempts) == var.consumer_maximum_retry_attempts
    error_message = "consumer_maximum_retry_attempts must be a whole number from 0 to 10000."
  }
}

variable "consumer_maximum_record_age_seconds" {
  description = "Stream records older than this are not handed to the consumer: the mapping sends their range to <name>-consumer-dlq (60..604800 s). At most dedup_horizon_seconds (when deduplication is on): every hit the consumer counts is then counted within the horizon of its arrival, where its (clientid, hitid) stops a second count whatever the stream position (docs/DEPLOY.md, \"The stream consumer\")."
  type        = number
  default     = 3600

  validation {
    condition     = var.consumer_maximum_record_age_seconds >= 60 && var.consumer_maximum_record_age_seconds <= 604800 && floor(var.consumer_maximum_record_age_seconds) == var.consumer_maximum_record_age_seconds
    error_message = "consumer_maximum_record_age_seconds must be a whole number from 60 to 604800 (Lambda's range; -1, no limit, is not allowed here)."
  }

  validation {
    condition     = var.dedup_horizon_seconds == 0 || var.consumer_maximum_record_age_seconds <= max(var.dedup_horizon_seconds, 60)
    error_message = "consumer_maximum_record_age_seconds must not exceed dedup_horizon_seconds (or 60, Lambda's minimum, for a shorter horizon): beyond the horizon only the stream position stops a second count."
  }
}

variable "consumer_iterator_age_threshold_ms" {
  description = "Alarm when the stream consumer receives records more than this (ms) after they reached the stream (its IteratorAge, maximum per minute) in 3 of 5 minutes. Default 5 s: the consumer's promise is hits visible within 2 s (SPEC 19), and a healthy mapping hands a shard's records over within about a second (one poll a second)."
  type        = number
  default     = 5000

  validation {
    condition     = var.consumer_iterator_age_threshold_ms >= 1000
    error_message = "consumer_iterator_age_threshold_ms must be >= 1000: the mapping polls each shard once a second."
  }
}

variable "curate_batch_size" {
  description = "SQS messages (raw objects) per curate invocation (1..10)."
  type        = number
  default     = 5

  validation {
    condition     = var.curate_batch_size >= 1 && var.curate_batch_size <= 10
    error_message = "curate_batch_size must be between 1 and 10."
  }
}

variable "curate_max_receive_count" {
  description = "Deliveries of a curate message before it moves to the dead-letter queue."
  type        = number
  default     = 5

  validation {
    condition     = var.curate_max_receive_count >= 1 && var.curate_max_receive_count <= 1000
    error_message = "curate_max_receive_count must be between 1 and 1000."
  }
}

variable "curate_maximum_concurrency" {
  description = "Most concurrent curate invocations (2..1000)."
  type        = number
  default     = 20

  validation {
    condition     = var.curate_maximum_concurrency >= 2 && var.curate_maximum_concurrency <= 1000
    error_message = "curate_maximum_concurrency must be between 2 and 1000."
  }
}

variable "glue_projection_start_date" {
  description = "First dt (YYYY-MM-DD) of Athena's partition projection."
  type        = string
  default     = "2024-01-01"

  validation {
    condition     = can(regex("^\\d{4}-\\d{2}-\\d{2}$", var.glue_projection_start_date))
    error_message = "glue_projection_start_date must be YYYY-MM-DD."
  }
}

variable "alarm_email" {
  description = "E-mail subscribed to the alarm topic; empty for none."
  type        = string
  default     = ""

  validation {
    condition     = var.alarm_email == "" || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.alarm_email))
    error_message = "alarm_email must be empty or an e-mail address."
  }
}

variable "kinesis_iterator_age_threshold_ms" {
  description = "Alarm threshold for the hits stream's iterator age (ms): the slowest of its readers (Firehose, the stream consumer); records older than the stream's 24 h retention are lost to that reader."
  type        = number
  default     = 600000

  validation {
    condition     = var.kinesis_iterator_age_threshold_ms > 0
    error_message = "kinesis_iterator_age_threshold_ms must be > 0."
  }
}

variable "curate_queue_age_threshold_seconds" {
  description = "Alarm when the oldest message of the curate queue is older than this (s): raw objects wait for curate (backlog, or a message failing until it reaches the dead-letter queue)."
  type        = number
  default     = 900

  validation {
    condition     = var.curate_queue_age_threshold_seconds >= 60
    error_message = "curate_queue_age_threshold_seconds must be >= 60 (Firehose writes a raw object every 60 s at most)."
  }
}

variable "erasure_delay_seconds" {
  description = "Delay (s) of an erasure request on its queue before gender-erase sees it (60..900): hits accepted before the request reach curated data first (Firehose buffer, up to 1.5x its interval, plus curate)."
  type        = number
  default     = 300

  validation {
    condition     = var.erasure_delay_seconds >= 60 && var.erasure_delay_seconds <= 900
    error_message = "erasure_delay_seconds must be between 60 and 900."
  }
}

variable "erasure_batch_size" {
  description = "Most erasures per gender-erase invocation, all found by one Athena query (1..1000)."
  type        = number
  default     = 1000

  validation {
    condition     = var.erasure_batch_size >= 1 && var.erasure_batch_size <= 1000
    error_message = "erasure_batch_size must be between 1 and 1000."
  }
}

variable "erasure_batching_window_seconds" {
  description = "Longest wait (s) for an erasure batch to fill (1..300): longer windows mean fewer Athena queries."
  type        = number
  default     = 300

  validation {
    condition     = var.erasure_batching_window_seconds >= 1 && var.erasure_batching_window_seconds <= 300
    error_message = "erasure_batching_window_seconds must be between 1 and 300."
  }
}

variable "erasure_max_receive_count" {
  description = "Deliveries of an erasure message before it moves to the dead-letter queue."
  type        = number
  default     = 5

  validation {
    condition     = var.erasure_max_receive_count >= 1 && var.erasure_max_receive_count <= 1000
    error_message = "erasure_max_receive_count must be between 1 and 1000."
  }
}

variable "erasure_bytes_scanned_cutoff" {
  description = "Most bytes one erasure Athena query may scan (the workgroup cancels it beyond; >= 10 MB). Default 1 TiB: the clientid columns of 400 days at 1,000 hits/s are a few hundred GB."
  type        = number
  default     = 1099511627776

  validation {
    condition     = var.erasure_bytes_scanned_cutoff >= 10485760
    error_message = "erasure_bytes_scanned_cutoff must be at least 10 MB (10485760), Athena's minimum."
  }
}

variable "daily_writes_per_second" {
  description = "Window writes a second the daily job makes at most (DAILY_WRITES_PER_SECOND). 2,000 is half of what a new on-demand table serves at once (4,000 writes/s), leaving room for the stream consumer's writes; with provisioned capacity, set it below the capacity the consumer leaves free (docs/DEPLOY.md, The daily job at 1,000 hits/s)."
  type        = number
  default     = 2000

  validation {
    condition     = var.daily_writes_per_second >= 1 && var.daily_writes_per_second <= 40000 && floor(var.daily_writes_per_second) == var.daily_writes_per_second
    error_message = "daily_writes_per_second must be a whole number from 1 to 40000 (an on-demand table's default maximum)."
  }
}
