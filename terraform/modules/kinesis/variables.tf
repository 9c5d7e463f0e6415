variable "name" {
  description = "Stream name (already prefixed with project and environment)."
  type        = string
}

variable "stream_mode" {
  description = "ON_DEMAND (default, no capacity planning) or PROVISIONED (then shard_count applies)."
  type        = string
  default     = "ON_DEMAND"

  validation {
    condition     = contains(["ON_DEMAND", "PROVISIONED"], var.stream_mode)
    error_message = "stream_mode must be ON_DEMAND or PROVISIONED."
  }
}

variable "shard_count" {
  description = "Shards when stream_mode = PROVISIONED (1 MB/s or 1,000 records/s of writes each). Ignored for ON_DEMAND."
  type        = number
  default     = 2

  validation {
    condition     = var.shard_count >= 1 && floor(var.shard_count) == var.shard_count
    error_message = "shard_count must be a whole number >= 1."
  }
}

variable "retention_hours" {
  description = "How long records stay in the stream (24..8760 hours)."
  type        = number
  default     = 24

  validation {
    condition     = var.retention_hours >= 24 && var.retention_hours <= 8760
    error_message = "retention_hours must be between 24 and 8760."
  }
}

variable "tags" {
  description = "Tags for every resource of the module."
  type        = map(string)
  default     = {}
}
