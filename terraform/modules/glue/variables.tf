variable "database_name" {
  description = "Glue database name (underscores only: Athena rejects '-' in unquoted names)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9_]{1,255}$", var.database_name))
    error_message = "database_name must be lower-case letters, digits and underscores."
  }
}

variable "curated_bucket_name" {
  description = "Bucket holding curated/hits/dt=.../*.parquet and curated/daily/dt=.../daily.parquet."
  type        = string
}

variable "projection_start_date" {
  description = "First dt (YYYY-MM-DD) Athena's partition projection considers."
  type        = string
  default     = "2024-01-01"

  validation {
    condition     = can(regex("^\\d{4}-\\d{2}-\\d{2}$", var.projection_start_date))
    error_message = "projection_start_date must be YYYY-MM-DD."
  }
}

variable "tags" {
  description = "Tags for the database (Glue tables take none)."
  type        = map(string)
  default     = {}
}

variable "athena_workgroup" {
  description = "Athena workgroup the named queries belong to."
  type        = string
  default     = "primary"
}
