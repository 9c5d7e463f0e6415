variable "name" {
  description = "Rule name (already prefixed with project and environment)."
  type        = string
}

variable "schedule_expression" {
  description = "EventBridge schedule (UTC), default 01:00 UTC daily."
  type        = string
  default     = "cron(0 1 * * ? *)"

  validation {
    condition     = can(regex("^(cron|rate)\\(.+\\)$", var.schedule_expression))
    error_message = "schedule_expression must be cron(...) or rate(...)."
  }
}

variable "function_name" {
  description = "Name of the daily function (gender-daily)."
  type        = string
}

variable "function_arn" {
  description = "ARN of the daily function."
  type        = string
}

variable "retry_attempts" {
  description = "Retries of a failed delivery to the function before the event goes to the dead-letter queue (0..185)."
  type        = number
  default     = 10

  validation {
    condition     = var.retry_attempts >= 0 && var.retry_attempts <= 185
    error_message = "retry_attempts must be between 0 and 185."
  }
}

variable "tags" {
  description = "Tags for every resource of the module."
  type        = map(string)
  default     = {}
}
