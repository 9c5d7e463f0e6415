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

output "cors" {
  description = "The API's CORS configuration (SPEC 18: POST /hits from the listed origins), or null when no origins are listed."
  value       = one(aws_apigatewayv2_api.this.cors_configuration)
}
