variable "name" {
  description = "Prefix of alarm names and of the SNS topic (project-environment)."
  type        = string
}

variable "alarm_email" {
  description = "E-mail address subscribed to the alarm topic (confirm the subscription mail); empty for none."
  type        = string
  default     = ""

  validation {
    condition     = var.alarm_email == "" || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.alarm_email))
    error_message = "alarm_email must be empty or an e-mail address."
  }
}

variable "stream_name" {
  description = "Kinesis stream to watch (iterator age of its slowest reader: Firehose or the stream consumer)."
  type        = string
}

variable "iterator_age_threshold_ms" {
  description = "Alarm when the stream's oldest unread record is older than this (ms)."
  type        = number
  default     = 600000

  validation {
    condition     = var.iterator_age_threshold_ms > 0
    error_message = "iterator_age_threshold_ms must be > 0."
  }
}

variable "delivery_stream_name" {
  description = "Firehose delivery stream to watch."
  type        = string
}

variable "data_freshness_threshold_seconds" {
  description = "Alarm when the oldest record not yet delivered to S3 is older than this (s)."
  type        = number
  default     = 900

  validation {
    condition     = var.data_freshness_threshold_seconds > 0
    error_message = "data_freshness_threshold_seconds must be > 0."
  }
}

variable "error_records_bucket_name" {
  description = "Bucket whose error prefix receives the records Firehose could not deliver (the raw bucket)."
  type        = string
}

variable "error_records_prefix" {
  description = "Firehose's error output prefix in that bucket (a request-metrics filter watches it)."
  type        = string
  default     = "errors/"

  validation {
    condition     = endswith(var.error_records_prefix, "/") && length(var.error_records_prefix) > 1
    error_message = "error_records_prefix must be a non-empty prefix ending in '/'."
  }
}

variable "curate_queue_name" {
  description = "The curate queue (S3 notifications of raw objects), watched for the age of its oldest message."
  type        = string
}

variable "curate_queue_age_threshold_seconds" {
  description = "Alarm when the curate queue's oldest message is older than this (s)."
  type        = number
  default     = 900

  validation {
    condition     = var.curate_queue_age_threshold_seconds >= 60
    error_message = "curate_queue_age_threshold_seconds must be >= 60."
  }
}

variable "api_id" {
  description = "HTTP API whose 5xx share and p99 latencies are watched."
  type        = string
}

variable "api_5xx_percent_threshold" {
  description = "Alarm when more than this percent of the API's requests answer 5xx over 5 minutes."
  type        = number
  default     = 1

  validation {
    condition     = var.api_5xx_percent_threshold > 0 && var.api_5xx_percent_threshold <= 100
    error_message = "api_5xx_percent_threshold must be in (0, 100]."
  }
}

variable "api_latency_p99_threshold_ms" {
  description = "Alarm when the API's p99 Latency or IntegrationLatency stays above this (ms) in 2 of 3 periods of 5 minutes."
  type        = number
  default     = 1000

  validation {
    condition     = var.api_latency_p99_threshold_ms > 0 && var.api_latency_p99_threshold_ms <= 30000
    error_message = "api_latency_p99_threshold_ms must be in (0, 30000] (30 s is the integration timeout)."
  }
}

variable "table_name" {
  description = "DynamoDB table whose throttling and transaction conflicts are watched."
  type        = string
}

variable "table_operations" {
  description = "DynamoDB operations the functions make on the table: ThrottledRequests is reported per operation, and the alarm sums these."
  type        = list(string)

  validation {
    condition     = length(var.table_operations) > 0 && length(var.table_operations) <= 10
    error_message = "table_operations must name 1..10 operations (the alarm's metric math takes at most 10 metrics)."
  }
}

variable "transaction_conflict_threshold" {
  description = "Alarm when more item requests than this are rejected in 5 minutes because they met a transaction on the same item (TransactionConflict)."
  type        = number
  default     = 0

  validation {
    condition     = var.transaction_conflict_threshold >= 0
    error_message = "transaction_conflict_threshold must be >= 0."
  }
}

variable "function_names" {
  description = "Lambda functions whose Errors are alarmed on, by short name (http, transform, consumer, curate, daily, erase)."
  type        = map(string)
}

variable "iterator_age_function_names" {
  description = "Functions fed by a stream event source mapping, by short name: their IteratorAge is alarmed on."
  type        = map(string)
  default     = {}
}

variable "function_iterator_age_threshold_ms" {
  description = "Alarm when a stream-fed function's IteratorAge (maximum per minute) stays above this (ms) in 3 of 5 minutes."
  type        = number
  default     = 5000

  validation {
    condition     = var.function_iterator_age_threshold_ms >= 1000
    error_message = "function_iterator_age_threshold_ms must be >= 1000: the mapping polls each shard once a second."
  }
}

variable "dead_letter_queue_names" {
  description = "Dead-letter queues by short name: any visible message is an alarm."
  type        = map(string)
}

variable "tags" {
  description = "Tags for every resource of the module."
  type        = map(string)
  default     = {}
}
