output "function_name" {
  description = "Function name; available once the role's policies are attached (so triggers can be wired)."
  value       = aws_lambda_function.this.function_name
  depends_on  = [aws_iam_role_policy.this]
}

output "arn" {
  description = "Function ARN; available once the role's policies are attached."
  value       = aws_lambda_function.this.arn
  depends_on  = [aws_iam_role_policy.this]
}

output "invoke_arn" {
  description = "ARN for API Gateway integrations."
  value       = aws_lambda_function.this.invoke_arn
}

output "role_name" {
  description = "Name of the function's own IAM role."
  value       = aws_iam_role.this.name
}

output "log_group_name" {
  description = "The function's log group."
  value       = aws_cloudwatch_log_group.this.name
}

output "dead_letter_queue_arn" {
  description = "ARN of the asynchronous-invocation dead-letter queue, or null."
  value       = try(aws_sqs_queue.dlq[0].arn, null)
}

output "dead_letter_queue_name" {
  description = "Name of the asynchronous-invocation dead-letter queue, or null."
  value       = try(aws_sqs_queue.dlq[0].name, null)
}

output "settings" {
  description = "The function's sizing, logging and environment as deployed: memory (MB), timeout (s), reserved concurrency, runtime, architectures, log format and levels, async dead-letter queue, environment variables (resource names and limits, no secrets; read by the terraform tests and handy in `terraform output`)."
  value = {
    memory_mb             = aws_lambda_function.this.memory_size
    timeout_seconds       = aws_lambda_function.this.timeout
    reserved_concurrency  = aws_lambda_function.this.reserved_concurrent_executions
    runtime               = aws_lambda_function.this.runtime
    architectures         = aws_lambda_function.this.architectures
    log_format            = aws_lambda_function.this.logging_config[0].log_format
    application_log_level = aws_lambda_function.this.logging_config[0].application_log_level
    system_log_level      = aws_lambda_function.this.logging_config[0].system_log_level
    dead_letter_queue     = try(aws_sqs_queue.dlq[0].name, null)
    environment           = try(aws_lambda_function.this.environment[0].variables, {})
  }
}
