variable "name" {
  description = "Bucket name (already prefixed with project and environment; globally unique)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.name))
    error_message = "Bucket names are 3..63 characters of a-z, 0-9, '.' and '-'."
  }
}

variable "versioning" {
  description = "Keep object versions (protects against overwrite and deletion)."
  type        = bool
  default     = true
}

variable "force_destroy" {
  description = "Let terraform destroy delete a bucket that still holds objects (and versions)."
  type        = bool
  default     = false
}

variable "lifecycle_rules" {
  description = "Lifecycle rules by prefix: expiration and transition in days (null = none), expiry of noncurrent versions."
  type = list(object({
    id                         = string
    prefix                     = string
    expiration_days            = optional(number)
    transition_days            = optional(number)
    transition_storage_class   = optional(string, "STANDARD_IA")
    noncurrent_expiration_days = optional(number, 30)
  }))
  default = []

  validation {
    condition = alltrue([for r in var.lifecycle_rules : (
      (r.expiration_days == null || try(r.expiration_days >= 1, false)) &&
      (r.transition_days == null || try(r.transition_days >= 30, false)) &&
      contains(["STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR", "GLACIER", "DEEP_ARCHIVE"], r.transition_storage_class)
    )])
    error_message = "expiration_days >= 1, transition_days >= 30 (S3 minimum for IA classes), and a valid storage class."
  }
}

variable "tags" {
  description = "Tags for every resource of the module."
  type        = map(string)
  default     = {}
}
