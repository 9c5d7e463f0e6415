# A Lambda function URL in front of gender-http: the browser front door
# (pages sending their own hits, one per request). No API Gateway request
# charge; the function checks the x-api-key itself (SPEC 4), so the URL's
# own authentication is NONE, and anyone who can reach the URL can invoke
# the function (bounded by its reserved concurrency, not by API Gateway's
# throttling).

resource "aws_lambda_function_url" "this" {
  function_name      = var.function_name
  authorization_type = "NONE"
  invoke_mode        = "BUFFERED"
  #checkov:skip=CKV_AWS_258:the URL is the public browser front door; the function answers 401 without the x-api-key (SPEC 4), exactly as behind API Gateway

  dynamic "cors" {
    for_each = length(var.cors_allow_origins) > 0 ? [var.cors_allow_origins] : []

    content {
      allow_origins = cors.value
      # What a page sends: POST /hits (SPEC 18: CORS on POST /hits only; the
      # lookups stay server-to-server). tracker.js needs no preflight (key in
      # the URL, text/plain body); a page's own fetch with x-api-key does.
      allow_methods = ["POST"]
      allow_headers = ["content-type", "x-api-key"]
      max_age       = var.cors_max_age_seconds
    }
  }
}

# A URL with authorization type NONE needs a resource-based policy that lets
# everyone invoke it; function URLs created since October 2025 also need
# lambda:InvokeFunction. hashicorp/aws 6.25.0 cannot add the
# lambda:InvokedViaFunctionUrl condition to that second statement
# (invoked_via_function_url came in a later release), so it also lets any
# AWS principal call Invoke directly: the same handler and key check, no
# other data (docs/DEPLOY.md, "The browser front door").
resource "aws_lambda_permission" "invoke_url" {
  statement_id           = "AllowPublicFunctionUrl"
  action                 = "lambda:InvokeFunctionUrl"
  function_name          = var.function_name
  principal              = "*"
  function_url_auth_type = "NONE"
  #checkov:skip=CKV_AWS_301:public by design: the browser front door (authorization NONE); the function answers 401 without the x-api-key
}

resource "aws_lambda_permission" "invoke_function" {
  statement_id  = "AllowPublicFunctionUrlInvoke"
  action        = "lambda:InvokeFunction"
  function_name = var.function_name
  principal     = "*"
  #checkov:skip=CKV_AWS_301:public by design (the browser front door above); the pinned provider cannot scope it with lambda:InvokedViaFunctionUrl
}
