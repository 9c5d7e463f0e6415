output "url" {
  description = "Base URL of the API ($default stage), e.g. <url>/hits."
  value       = aws_apigatewayv2_stage.this.invoke_url
}

output "id" {
  description = "API id."
  value       = aws_apigatewayv2_api.this.id
}

output "access_log_group_name" {
  description = "Log group of the JSON access logs."
  value       = aws_cloudwatch_log_group.access.name
}
