# Values the mocked hashicorp/aws gives the attributes it computes. The
# provider still validates arguments fed from them (ARNs must parse, policies
# must be JSON objects), so these are well-formed; the tests never assert on
# them. One value per type: names, not these ARNs, tell resources apart.

mock_data "aws_caller_identity" {
  defaults = {
    account_id = "123456789012"
  }
}

mock_data "aws_iam_policy_document" {
  defaults = {
    json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
  }
}

mock_resource "aws_iam_role" {
  defaults = {
    arn = "arn:aws:iam::123456789012:role/mock"
  }
}

mock_resource "aws_sns_topic" {
  defaults = {
    arn = "arn:aws:sns:us-east-1:123456789012:mock"
  }
}

mock_resource "aws_sqs_queue" {
  defaults = {
    arn = "arn:aws:sqs:us-east-1:123456789012:mock"
    url = "https://sqs.us-east-1.amazonaws.com/123456789012/mock"
  }
}

mock_resource "aws_cloudwatch_log_group" {
  defaults = {
    arn = "arn:aws:logs:us-east-1:123456789012:log-group:mock"
  }
}

mock_resource "aws_cloudwatch_log_stream" {
  defaults = {
    arn = "arn:aws:logs:us-east-1:123456789012:log-group:mock:log-stream:mock"
  }
}

mock_resource "aws_lambda_function" {
  defaults = {
    arn        = "arn:aws:lambda:us-east-1:123456789012:function:mock"
    invoke_arn = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:mock/invocations"
  }
}

mock_resource "aws_lambda_function_url" {
  defaults = {
    function_url = "https://mock.lambda-url.us-east-1.on.aws/"
  }
}

mock_resource "aws_kinesis_stream" {
  defaults = {
    arn = "arn:aws:kinesis:us-east-1:123456789012:stream/mock"
  }
}

mock_resource "aws_kinesis_firehose_delivery_stream" {
  defaults = {
    arn = "arn:aws:firehose:us-east-1:123456789012:deliverystream/mock"
  }
}

mock_resource "aws_s3_bucket" {
  defaults = {
    arn = "arn:aws:s3:::mock"
  }
}

mock_resource "aws_dynamodb_table" {
  defaults = {
    arn = "arn:aws:dynamodb:us-east-1:123456789012:table/mock"
  }
}

mock_resource "aws_ssm_parameter" {
  defaults = {
    arn = "arn:aws:ssm:us-east-1:123456789012:parameter/mock"
  }
}

mock_resource "aws_athena_workgroup" {
  defaults = {
    arn = "arn:aws:athena:us-east-1:123456789012:workgroup/mock"
  }
}

mock_resource "aws_cloudwatch_event_rule" {
  defaults = {
    arn = "arn:aws:events:us-east-1:123456789012:rule/mock"
  }
}

mock_resource "aws_apigatewayv2_api" {
  defaults = {
    arn           = "arn:aws:apigateway:us-east-1::/apis/mock"
    execution_arn = "arn:aws:execute-api:us-east-1:123456789012:mock"
  }
}

mock_resource "aws_apigatewayv2_stage" {
  defaults = {
    invoke_url = "https://mock.execute-api.us-east-1.amazonaws.com/"
  }
}

mock_resource "aws_glue_catalog_database" {
  defaults = {
    arn = "arn:aws:glue:us-east-1:123456789012:database/mock"
  }
}

mock_resource "aws_glue_catalog_table" {
  defaults = {
    arn = "arn:aws:glue:us-east-1:123456789012:table/mock/mock"
  }
}
