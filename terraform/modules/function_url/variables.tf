variable "function_name" {
  description = "Name of the HTTP function (gender-http) the URL invokes."
  type        = string
}

variable "cors_allow_origins" {
  description = "Origins (scheme://host[:port]) whose pages may call the URL from a browser; empty for no CORS (server-to-server callers need none)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for o in var.cors_allow_origins : o == "*" || can(regex("^https?://[^/*]+$", o))])
    error_message = "Each origin must be \"*\" or scheme://host[:port], without a path."
  }
}

variable "cors_max_age_seconds" {
  description = "How long browsers may cache a preflight answer (s, 0..86400)."
  type        = number
  default     = 600

  validation {
    condition     = var.cors_max_age_seconds >= 0 && var.cors_max_age_seconds <= 86400
    error_message = "cors_max_age_seconds must be between 0 and 86400."
  }
}
