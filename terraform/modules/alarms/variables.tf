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
  description = "Kinesis stream to watch (iterator age)."
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

variable "function_names" {
  description = "Lambda functions whose Errors are alarmed on, by short name (http, transform, curate, daily)."
  type        = map(string)
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
