output "url" {
  description = "The function URL without its trailing slash, e.g. <url>/hits."
  value       = trimsuffix(aws_lambda_function_url.this.function_url, "/")
}

output "settings" {
  description = "Authorization type, invoke mode, CORS (origins, methods, headers) and the resource-policy statements of the URL."
  value = {
    authorization_type = aws_lambda_function_url.this.authorization_type
    invoke_mode        = aws_lambda_function_url.this.invoke_mode
    cors               = aws_lambda_function_url.this.cors
    permissions = {
      for p in [aws_lambda_permission.invoke_url, aws_lambda_permission.invoke_function] :
      p.statement_id => { action = p.action, principal = p.principal, auth_type = p.function_url_auth_type }
    }
  }
}
