output "queue_arn" {
  description = "ARN of the erasure queue (http sends to it, erase receives from it)."
  value       = aws_sqs_queue.this.arn
}

output "queue_url" {
  description = "URL of the erasure queue (gender-http's ERASURE_QUEUE_URL)."
  value       = aws_sqs_queue.this.id
}

output "queue_name" {
  description = "Name of the erasure queue."
  value       = aws_sqs_queue.this.name
}

output "dlq_name" {
  description = "Name of the erasure dead-letter queue (erasures that failed max_receive_count times)."
  value       = aws_sqs_queue.dlq.name
}

output "dlq_url" {
  description = "URL of the erasure dead-letter queue (for inspection and redrive)."
  value       = aws_sqs_queue.dlq.id
}

output "delivery" {
  description = "How the queue delivers to the function: visibility timeout, redrive (max receive count, dead-letter queue ARN) and the event source mapping (batch size, batching window, response types, maximum concurrency)."
  value = {
    visibility_timeout_seconds = aws_sqs_queue.this.visibility_timeout_seconds
    redrive = {
      max_receive_count     = jsondecode(aws_sqs_queue.this.redrive_policy).maxReceiveCount
      dead_letter_queue_arn = jsondecode(aws_sqs_queue.this.redrive_policy).deadLetterTargetArn
    }
    mapping = {
      batch_size                         = aws_lambda_event_source_mapping.this.batch_size
      maximum_batching_window_in_seconds = aws_lambda_event_source_mapping.this.maximum_batching_window_in_seconds
      function_response_types            = aws_lambda_event_source_mapping.this.function_response_types
      maximum_concurrency                = aws_lambda_event_source_mapping.this.scaling_config[0].maximum_concurrency
    }
  }
}
