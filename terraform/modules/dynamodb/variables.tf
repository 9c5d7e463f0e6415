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

variable "capacity_mode" {
  description = "ON_DEMAND (pay per request, the default) or PROVISIONED (capacity units kept near a target utilization by Application Auto Scaling, see provisioned_capacity)."
  type        = string
  default     = "ON_DEMAND"

  validation {
    condition     = contains(["ON_DEMAND", "PROVISIONED"], var.capacity_mode)
    error_message = "capacity_mode must be ON_DEMAND or PROVISIONED."
  }
}

variable "provisioned_capacity" {
  description = "With capacity_mode = PROVISIONED: the auto scaling range of read and write capacity units and the utilization (%) it keeps them at. Ignored on demand."
  type = object({
    read_min                   = number
    read_max                   = number
    write_min                  = number
    write_max                  = number
    target_utilization_percent = number
  })
  default = {
    read_min                   = 5
    read_max                   = 4000
    write_min                  = 5
    write_max                  = 4000
    target_utilization_percent = 70
  }

  validation {
    condition = (
      var.provisioned_capacity.read_min >= 1 && var.provisioned_capacity.read_min <= var.provisioned_capacity.read_max &&
      var.provisioned_capacity.write_min >= 1 && var.provisioned_capacity.write_min <= var.provisioned_capacity.write_max &&
      var.provisioned_capacity.read_max <= 40000 && var.provisioned_capacity.write_max <= 40000 &&
      var.provisioned_capacity.target_utilization_percent >= 20 && var.provisioned_capacity.target_utilization_percent <= 90
    )
    error_message = "provisioned_capacity: 1 <= min <= max <= 40000 for read and write (the default per-table quota), target_utilization_percent 20..90 (what DynamoDB auto scaling accepts)."
  }
}

variable "warm_throughput" {
  description = "Read and write units per second the table can serve at once (warm throughput, set with UpdateTable and billed once per change); null leaves what DynamoDB keeps by itself. A new on-demand table starts at 12000 reads and 4000 writes per second; DynamoDB only raises the value, it never lowers it."
  type = object({
    read_units_per_second  = number
    write_units_per_second = number
  })
  default = null

  validation {
    condition     = var.warm_throughput == null || try(var.warm_throughput.read_units_per_second >= 1 && var.warm_throughput.write_units_per_second >= 1 && floor(var.warm_throughput.read_units_per_second) == var.warm_throughput.read_units_per_second && floor(var.warm_throughput.write_units_per_second) == var.warm_throughput.write_units_per_second, false)
    error_message = "warm_throughput must be null or whole read and write units per second (>= 1)."
  }
}

variable "tags" {
  description = "Tags for every resource of the module."
  type        = map(string)
  default     = {}
}
