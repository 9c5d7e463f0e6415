variable "name" {
  description = "API name (already prefixed with project and environment)."
  type        = string
}

variable "function_name" {
  description = "Name of the HTTP function (gender-http) that serves every route."
  type        = string
}

variable "function_invoke_arn" {
  description = "Invoke ARN of the HTTP function."
  type        = string
}

variable "routes" {
  description = "Route keys, all served by the function. $default sends every other request to the Router too, so unknown paths and wrong methods get its JSON 404/405 (SPEC 13) rather than API Gateway's own answer."
  type        = set(string)
  default     = ["POST /hits", "GET /gender/{clientid}", "DELETE /visitors/{clientid}", "GET /erasures/{id}", "GET /health", "GET /tracker.js", "GET /openapi.json", "GET /docs", "$default"]

  validation {
    condition     = alltrue([for r in var.routes : r == "$default" || can(regex("^(GET|POST|PUT|DELETE|PATCH|HEAD|OPTIONS|ANY) /", r))])
    error_message = "Each route must be \"METHOD /path\" or $default."
  }
}

variable "throttling_burst_limit" {
  description = "Default route burst limit (requests)."
  type        = number
  default     = 2000

  validation {
    condition     = var.throttling_burst_limit >= 0
    error_message = "throttling_burst_limit must be >= 0."
  }
}

variable "throttling_rate_limit" {
  description = "Default route steady-state rate limit (requests per second)."
  type        = number
  default     = 1000

  validation {
    condition     = var.throttling_rate_limit >= 0
    error_message = "throttling_rate_limit must be >= 0."
  }
}

variable "log_retention_days" {
  description = "Retention of the access log group, in days (a value CloudWatch Logs accepts)."
  type        = number
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be one of the values CloudWatch Logs accepts."
  }
}

variable "cors_allow_origins" {
  description = "Origins whose pages may POST /hits (SPEC 18). Non-empty: the API's cors_configuration answers preflights for them (POST only, so a page cannot call the lookups: those need x-api-key, hence a preflight, which names only POST). Empty: no CORS."
  type        = list(string)
  default     = []
}

variable "preflight_max_age_seconds" {
  description = "How long browsers may cache a preflight answer (the Router's own PREFLIGHT_MAX_AGE_SECONDS locally)."
  type        = number
  default     = 86400
}

variable "tags" {
  description = "Tags for every resource of the module."
  type        = map(string)
  default     = {}
}
