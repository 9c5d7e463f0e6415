variable "name" {
  description = "Queue name (already prefixed with project and environment)."
  type        = string
}

variable "raw_bucket_name" {
  description = "Name of the raw bucket whose ObjectCreated notifications feed the queue."
  type        = string
}

variable "raw_bucket_arn" {
  description = "ARN of the raw bucket (the only source allowed to send to the queue)."
  type        = string
}

variable "raw_prefix" {
  description = "Key prefix of raw objects (notifications only for it)."
  type        = string
  default     = "raw/"
}

variable "function_name" {
  description = "Name of the curate function (gender-curate)."
  type        = string
}

variable "function_timeout_seconds" {
  description = "Timeout of the curate function; the queue's visibility timeout is 6 times it."
  type        = number

  validation {
    condition     = var.function_timeout_seconds >= 1 && var.function_timeout_seconds * 6 <= 43200
    error_message = "function_timeout_seconds must be >= 1 and 6x it must fit SQS's 12 h visibility limit."
  }
}

variable "batch_size" {
  description = "SQS messages per curate invocation (1..10 without a batching window)."
  type        = number
  default     = 5

  validation {
    condition     = var.batch_size >= 1 && var.batch_size <= 10
    error_message = "batch_size must be between 1 and 10."
  }
}

variable "max_receive_count" {
  description = "Deliveries of a message before it moves to the dead-letter queue."
  type        = number
  default     = 5

  validation {
    condition     = var.max_receive_count >= 1 && var.max_receive_count <= 1000
    error_message = "max_receive_count must be between 1 and 1000."
  }
}

variable "maximum_concurrency" {
  description = "Most concurrent curate invocations the event source mapping starts (2..1000)."
  type        = number
  default     = 20

  validation {
    condition     = var.maximum_concurrency >= 2 && var.maximum_concurrency <= 1000
    error_message = "maximum_concurrency must be between 2 and 1000."
  }
}

variable "tags" {
  description = "Tags for every resource of the module."
  type        = map(string)
  default     = {}
}
