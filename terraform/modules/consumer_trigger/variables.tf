variable "name" {
  description = "Name prefix (project-environment-consumer); the dead-letter queue is <name>-dlq."
  type        = string
}

variable "stream_arn" {
  description = "ARN of the Kinesis stream the consumer reads (the hits stream)."
  type        = string
}

variable "function_name" {
  description = "Name of the consumer function (gender-consumer)."
  type        = string
}

variable "starting_position" {
  description = "Where a new mapping starts reading: TRIM_HORIZON (the oldest record the stream keeps), LATEST, or AT_TIMESTAMP (starting_position_timestamp). Only read when the mapping is created; changing it replaces the mapping."
  type        = string
  default     = "TRIM_HORIZON"

  validation {
    condition     = contains(["TRIM_HORIZON", "LATEST", "AT_TIMESTAMP"], var.starting_position)
    error_message = "starting_position must be TRIM_HORIZON, LATEST or AT_TIMESTAMP."
  }
}

variable "starting_position_timestamp" {
  description = "With starting_position = AT_TIMESTAMP: the RFC 3339 time to start reading from; ignored otherwise."
  type        = string
  default     = null

  validation {
    condition     = var.starting_position != "AT_TIMESTAMP" || can(formatdate("YYYY", var.starting_position_timestamp))
    error_message = "starting_position = AT_TIMESTAMP needs starting_position_timestamp as an RFC 3339 time (2026-11-24T10:00:00Z)."
  }
}

variable "batch_size" {
  description = "Most records per invocation (1..10000); Lambda also cuts a batch at its 6 MB payload."
  type        = number
  default     = 1000

  validation {
    condition     = var.batch_size >= 1 && var.batch_size <= 10000 && floor(var.batch_size) == var.batch_size
    error_message = "batch_size must be a whole number from 1 to 10000."
  }
}

variable "batching_window_seconds" {
  description = "Longest wait (0..300 s) for a batch to fill before the function is invoked; 0 invokes as soon as a poll finds records."
  type        = number
  default     = 0

  validation {
    condition     = var.batching_window_seconds >= 0 && var.batching_window_seconds <= 300 && floor(var.batching_window_seconds) == var.batching_window_seconds
    error_message = "batching_window_seconds must be a whole number from 0 to 300."
  }
}

variable "parallelization_factor" {
  description = "Batches processed at once per shard (1..10); records of one partition key (one visitor) stay in order for any factor."
  type        = number
  default     = 1

  validation {
    condition     = var.parallelization_factor >= 1 && var.parallelization_factor <= 10 && floor(var.parallelization_factor) == var.parallelization_factor
    error_message = "parallelization_factor must be a whole number from 1 to 10."
  }
}

variable "maximum_retry_attempts" {
  description = "Retries of a failed batch (from its first failed record) before the mapping sends its range to the dead-letter queue and goes on (0..10000)."
  type        = number
  default     = 10

  validation {
    condition     = var.maximum_retry_attempts >= 0 && var.maximum_retry_attempts <= 10000 && floor(var.maximum_retry_attempts) == var.maximum_retry_attempts
    error_message = "maximum_retry_attempts must be a whole number from 0 to 10000 (-1, retry until the record expires, is not allowed here)."
  }
}

variable "maximum_record_age_seconds" {
  description = "Records older than this (60..604800 s) are not delivered: their range goes to the dead-letter queue (-1, no limit, is not allowed here)."
  type        = number
  default     = 3600

  validation {
    condition     = var.maximum_record_age_seconds >= 60 && var.maximum_record_age_seconds <= 604800 && floor(var.maximum_record_age_seconds) == var.maximum_record_age_seconds
    error_message = "maximum_record_age_seconds must be a whole number from 60 to 604800."
  }
}

variable "tags" {
  description = "Tags for every resource of the module."
  type        = map(string)
  default     = {}
}
