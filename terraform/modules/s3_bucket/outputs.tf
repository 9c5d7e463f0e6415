output "name" {
  description = "Bucket name."
  value       = aws_s3_bucket.this.bucket
}

output "arn" {
  description = "Bucket ARN."
  value       = aws_s3_bucket.this.arn
}

output "id" {
  description = "Bucket id (same as the name); depends on the TLS-only policy being in place."
  value       = aws_s3_bucket.this.id
  depends_on  = [aws_s3_bucket_policy.this]
}

output "lifecycle_rules" {
  description = "The bucket's lifecycle rules by id: prefix, expiration of current objects and of noncurrent versions in days (null = none; read by the terraform tests)."
  value = {
    for r in aws_s3_bucket_lifecycle_configuration.this.rule : r.id => {
      prefix                     = try(r.filter[0].prefix, null)
      expiration_days            = try(r.expiration[0].days, null)
      noncurrent_expiration_days = try(r.noncurrent_version_expiration[0].noncurrent_days, null)
    }
  }
}
