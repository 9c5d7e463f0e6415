variable "name" {
  description = "Delivery stream name (already prefixed with project and environment)."
  type        = string
}

variable "stream_arn" {
  description = "ARN of the Kinesis Data Stream that is the source."
  type        = string
}

variable "raw_bucket_arn" {
  description = "ARN of the raw bucket (raw/dt=YYYY-MM-DD/ and errors/)."
  type        = string
}

variable "backup_bucket_arn" {
  description = "ARN of the bucket that receives the source records as received (source record backup)."
  type        = string
}

variable "transform_function_arn" {
  description = "ARN of the transform Lambda (gender-transform)."
  type        = string
}

variable "buffering_interval_seconds" {
  description = "Seconds Firehose buffers before writing an object (60..900: zero buffering is not available with dynamic partitioning)."
  type        = number
  default     = 60

  validation {
    condition     = var.buffering_interval_seconds >= 60 && var.buffering_interval_seconds <= 900
    error_message = "buffering_interval_seconds must be between 60 and 900: zero buffering is not available with dynamic partitioning."
  }
}

variable "buffering_size_mb" {
  description = "MB Firehose buffers before writing an object; dynamic partitioning requires 64..128."
  type        = number
  default     = 64

  validation {
    condition     = var.buffering_size_mb >= 64 && var.buffering_size_mb <= 128
    error_message = "buffering_size_mb must be between 64 and 128 (dynamic partitioning minimum is 64)."
  }
}

variable "processor_buffer_size_mb" {
  description = "MB of record data Firehose buffers before invoking the transform (0.2..3). Not 1, Firehose's default: the provider does not keep a parameter equal to its default, which would show a change on every plan."
  type        = number
  default     = 0.25

  validation {
    condition     = var.processor_buffer_size_mb >= 0.2 && var.processor_buffer_size_mb <= 3 && var.processor_buffer_size_mb != 1
    error_message = "processor_buffer_size_mb must be between 0.2 and 3 and not 1 (Firehose's default, which the provider drops from its state: a perpetual diff)."
  }
}

variable "processor_buffer_interval_seconds" {
  description = "Seconds Firehose buffers before invoking the transform when the size is not reached (0..900). Not 60, Firehose's default (the provider drops it: a perpetual diff)."
  type        = number
  default     = 10

  validation {
    condition     = var.processor_buffer_interval_seconds >= 0 && var.processor_buffer_interval_seconds <= 900 && floor(var.processor_buffer_interval_seconds) == var.processor_buffer_interval_seconds && var.processor_buffer_interval_seconds != 60
    error_message = "processor_buffer_interval_seconds must be a whole number from 0 to 900 and not 60 (Firehose's default, which the provider drops from its state: a perpetual diff)."
  }
}

variable "error_prefix" {
  description = "Key prefix of records Firehose could not deliver, in the raw bucket and in the backup bucket (<prefix><error type>/dt=YYYY-MM-DD/). Give it a lifecycle rule and an alarm."
  type        = string
  default     = "errors/"

  validation {
    condition     = can(regex("^[a-z0-9-]+/$", var.error_prefix)) && var.error_prefix != "raw/" && var.error_prefix != "source/"
    error_message = "error_prefix must be one path segment ending in '/', other than raw/ and source/."
  }
}

variable "log_retention_days" {
  description = "Retention of the delivery error log group, in days (a value CloudWatch Logs accepts)."
  type        = number
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be one of the values CloudWatch Logs accepts."
  }
}

variable "tags" {
  description = "Tags for every resource of the module."
  type        = map(string)
  default     = {}
}
