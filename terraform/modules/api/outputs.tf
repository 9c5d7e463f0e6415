output "url" {
  description = "Base URL of the API ($default stage) without a trailing slash, e.g. <url>/hits."
  # The $default stage's invoke_url ends in "/": "$URL/health" would request //health.
  value = trimsuffix(aws_apigatewayv2_stage.this.invoke_url, "/")
}

output "id" {
  description = "API id."
  value       = aws_apigatewayv2_api.this.id
}

output "access_log_group_name" {
  description = "Log group of the JSON access logs."
  value       = aws_cloudwatch_log_group.access.name
}
