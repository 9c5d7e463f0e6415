variable "name" {
  description = "Queue name (already prefixed with project and environment)."
  type        = string
}

variable "function_name" {
  description = "Name of the erase function (gender-erase)."
  type        = string
}

variable "function_timeout_seconds" {
  description = "Timeout of the erase function; the queue's visibility timeout is 6 times it."
  type        = number

  validation {
    condition     = var.function_timeout_seconds >= 1 && var.function_timeout_seconds * 6 <= 43200
    error_message = "function_timeout_seconds must be >= 1 and 6x it must fit SQS's 12 h visibility limit."
  }
}

variable "delay_seconds" {
  description = "Delay of every message before the function may see it (60..900): hits accepted before the request are in curated data by then."
  type        = number
  default     = 300

  validation {
    condition     = var.delay_seconds >= 60 && var.delay_seconds <= 900
    error_message = "delay_seconds must be between 60 and 900."
  }
}

variable "batch_size" {
  description = "Most erasures per invocation (1..1000, the function names at most 1000 visitors per Athena query)."
  type        = number
  default     = 1000

  validation {
    condition     = var.batch_size >= 1 && var.batch_size <= 1000
    error_message = "batch_size must be between 1 and 1000."
  }
}

variable "batching_window_seconds" {
  description = "Longest wait for a batch to fill (1..300 s; SQS needs a window for batches above 10)."
  type        = number
  default     = 300

  validation {
    condition     = var.batching_window_seconds >= 1 && var.batching_window_seconds <= 300
    error_message = "batching_window_seconds must be between 1 and 300."
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

variable "tags" {
  description = "Tags for every resource of the module."
  type        = map(string)
  default     = {}
}
