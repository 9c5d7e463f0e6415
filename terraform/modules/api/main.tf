resource "aws_apigatewayv2_api" "this" {
  name          = var.name
  protocol_type = "HTTP"
  description   = "Gender Service: POST /hits, GET /gender/{clientid} (keys and their scopes checked by the function, SPEC 4, 18)"

  # Browsers' pages POSTing hits (SPEC 18, tracker.js). API Gateway answers the
  # preflights itself and sets the CORS headers (it ignores the function's);
  # the function still refuses POST /hits from origins outside the list.
  dynamic "cors_configuration" {
    for_each = length(var.cors_allow_origins) > 0 ? [var.cors_allow_origins] : []

    content {
      allow_origins  = cors_configuration.value
      allow_methods  = ["POST"]
      allow_headers  = ["content-type", "x-api-key"]
      expose_headers = ["retry-after"]
      max_age        = var.preflight_max_age_seconds
    }
  }

  tags = merge(var.tags, { Name = var.name, module = "api" })
}

resource "aws_apigatewayv2_integration" "this" {
  api_id           = aws_apigatewayv2_api.this.id
  integration_type = "AWS_PROXY"
  integration_uri  = var.function_invoke_arn
  # Lambda is invoked with POST whatever the client's method; explicit, so the
  # plan does not depend on a provider default.
  integration_method     = "POST"
  payload_format_version = "2.0"
  # The HTTP API maximum (30 s, not raisable). The function's own timeout
  # (<= 29 s) and its per-request deadline end a slow request first.
  timeout_milliseconds = 30000
}

resource "aws_apigatewayv2_route" "this" {
  for_each = var.routes

  api_id    = aws_apigatewayv2_api.this.id
  route_key = each.value
  target    = "integrations/${aws_apigatewayv2_integration.this.id}"
  #checkov:skip=CKV_AWS_309:the keys of SPEC 4 and 18 (ingest, read, admin) are checked by the function's Router (401/403 JSON), exactly as locally; HTTP APIs have no native API keys and /health, /tracker.js, /openapi.json, /docs are public by the SPEC
}

resource "aws_cloudwatch_log_group" "access" {
  name              = "/aws/apigateway/${var.name}"
  retention_in_days = var.log_retention_days
  #checkov:skip=CKV_AWS_158:access logs use CloudWatch Logs' default encryption at rest
  #checkov:skip=CKV_AWS_338:retention is a variable (default 30 days): operational logs, not an audit record

  tags = merge(var.tags, { Name = "${var.name}-access", module = "api" })
}

resource "aws_apigatewayv2_stage" "this" {
  api_id      = aws_apigatewayv2_api.this.id
  name        = "$default"
  auto_deploy = true

  default_route_settings {
    throttling_burst_limit   = var.throttling_burst_limit
    throttling_rate_limit    = var.throttling_rate_limit
    detailed_metrics_enabled = true
  }

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.access.arn
    format = jsonencode({
      requestId          = "$context.requestId"
      ip                 = "$context.identity.sourceIp"
      requestTime        = "$context.requestTime"
      httpMethod         = "$context.httpMethod"
      routeKey           = "$context.routeKey"
      path               = "$context.path"
      status             = "$context.status"
      protocol           = "$context.protocol"
      responseLength     = "$context.responseLength"
      responseLatency    = "$context.responseLatency"
      integrationLatency = "$context.integrationLatency"
      integrationError   = "$context.integrationErrorMessage"
    })
  }

  tags = merge(var.tags, { Name = var.name, module = "api" })
}

resource "aws_lambda_permission" "this" {
  statement_id  = "AllowApiGatewayInvoke"
  action        = "lambda:InvokeFunction"
  function_name = var.function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.this.execution_arn}/*/*"
}
