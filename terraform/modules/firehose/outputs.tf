output "name" {
  description = "Delivery stream name."
  value       = aws_kinesis_firehose_delivery_stream.this.name
}

output "arn" {
  description = "Delivery stream ARN."
  value       = aws_kinesis_firehose_delivery_stream.this.arn
}

output "role_arn" {
  description = "ARN of the delivery stream's IAM role."
  value       = aws_iam_role.this.arn
}

output "error_prefix" {
  description = "Key prefix of the records Firehose could not deliver (raw and backup buckets)."
  value       = var.error_prefix
}

output "processor_parameters" {
  description = "Parameters of the transform processor (LambdaArn, BufferSizeInMBs, BufferIntervalInSeconds) as configured."
  value = {
    for p in aws_kinesis_firehose_delivery_stream.this.extended_s3_configuration[0].processing_configuration[0].processors[0].parameters :
    p.parameter_name => p.parameter_value
  }
}
