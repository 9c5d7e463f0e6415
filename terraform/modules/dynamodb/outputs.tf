output "name" {
  description = "Table name."
  value       = aws_dynamodb_table.this.name
}

output "arn" {
  description = "Table ARN."
  value       = aws_dynamodb_table.this.arn
}

output "capacity" {
  description = "Billing mode, warm throughput and, in provisioned mode, the auto scaling of each dimension (read, write: min, max, target utilization %)."
  value = {
    billing_mode    = aws_dynamodb_table.this.billing_mode
    warm_throughput = var.warm_throughput
    autoscaling = {
      for k, t in aws_appautoscaling_target.this : k => {
        dimension                  = t.scalable_dimension
        min                        = t.min_capacity
        max                        = t.max_capacity
        target_utilization_percent = aws_appautoscaling_policy.this[k].target_tracking_scaling_policy_configuration[0].target_value
        metric                     = aws_appautoscaling_policy.this[k].target_tracking_scaling_policy_configuration[0].predefined_metric_specification[0].predefined_metric_type
      }
    }
  }
}
