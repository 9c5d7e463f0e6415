variable "name" {
  description = "Table name (already prefixed with project and environment)."
  type        = string
}

variable "hash_key" {
  description = "Partition key attribute (type S)."
  type        = string
  default     = "pk"
}

variable "ttl_attribute" {
  description = "Attribute holding the expiry (epoch seconds) of items that expire, e.g. curate's idempotency markers."
  type        = string
  default     = "expires_at"
}

variable "kms_key_arn" {
  description = "Customer managed KMS key for encryption at rest; null uses the AWS managed key (aws/dynamodb)."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be null or a KMS key ARN."
  }
}

variable "deletion_protection" {
  description = "Refuse to delete the table (turn off before terraform destroy)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags for every resource of the module."
  type        = map(string)
  default     = {}
}
