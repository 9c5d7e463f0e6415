variable "name" {
  description = "Function name (already prefixed with project and environment)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,64}$", var.name))
    error_message = "Lambda function names are 1..64 characters of A-Z, a-z, 0-9, '_' and '-'."
  }
}

variable "description" {
  description = "Function description."
  type        = string
  default     = ""
}

variable "filename" {
  description = "Path of the deployment zip built by scripts/build-lambdas (target/lambda/<binary>/bootstrap.zip)."
  type        = string

  validation {
    condition     = endswith(var.filename, "/bootstrap.zip")
    error_message = "filename must be a cargo-lambda zip: .../target/lambda/<binary>/bootstrap.zip."
  }
}

variable "memory_mb" {
  description = "Memory in MB (128..10240); CPU scales with it."
  type        = number
  default     = 256

  validation {
    condition     = var.memory_mb >= 128 && var.memory_mb <= 10240
    error_message = "memory_mb must be between 128 and 10240."
  }
}

variable "timeout_seconds" {
  description = "Timeout in seconds (1..900)."
  type        = number
  default     = 30

  validation {
    condition     = var.timeout_seconds >= 1 && var.timeout_seconds <= 900
    error_message = "timeout_seconds must be between 1 and 900."
  }
}

variable "reserved_concurrency" {
  description = "Reserved concurrent executions; -1 leaves the function unreserved (account pool), 0 stops it."
  type        = number
  default     = -1

  validation {
    condition     = var.reserved_concurrency >= -1 && floor(var.reserved_concurrency) == var.reserved_concurrency
    error_message = "reserved_concurrency must be a whole number >= -1."
  }
}

variable "environment_variables" {
  description = "Environment variables of the function (exactly those its code reads; see the README's configuration table)."
  type        = map(string)
  default     = {}
}

variable "log_retention_days" {
  description = "Retention of the function's log group, in days (a value CloudWatch Logs accepts)."
  type        = number
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be one of the values CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, ...)."
  }
}

variable "log_level" {
  description = "Application log level (AWS_LAMBDA_LOG_LEVEL, set by Lambda's JSON logging): TRACE, DEBUG, INFO, WARN, ERROR or FATAL, the values Lambda accepts."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"], var.log_level)
    error_message = "log_level must be TRACE, DEBUG, INFO, WARN, ERROR or FATAL."
  }
}

variable "system_log_level" {
  description = "Level of Lambda's own platform log records (DEBUG, INFO or WARN). INFO keeps the platform.report record of each invocation (duration, billed duration, memory used, init duration): background functions need it to size memory and timeouts. WARN drops it and logs only platform errors (timeouts, out of memory, crashes)."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARN"], var.system_log_level)
    error_message = "system_log_level must be DEBUG, INFO or WARN (the values Lambda accepts)."
  }
}

variable "policy_documents" {
  description = "IAM policy documents (JSON) by concern, each attached to the function's own role as an inline policy. Keys must be known at plan time."
  type        = map(string)
  default     = {}
}

variable "create_dead_letter_queue" {
  description = "Create an SQS dead-letter queue for failed asynchronous invocations (functions invoked asynchronously, e.g. by EventBridge)."
  type        = bool
  default     = false
}

variable "async_retry_attempts" {
  description = "Retries of a failed asynchronous invocation before it goes to the dead-letter queue (0..2)."
  type        = number
  default     = 2

  validation {
    condition     = var.async_retry_attempts >= 0 && var.async_retry_attempts <= 2
    error_message = "async_retry_attempts must be 0, 1 or 2."
  }
}

variable "tags" {
  description = "Tags for every resource of the module."
  type        = map(string)
  default     = {}
}
