output "dlq_arn" {
  description = "ARN of the consumer's dead-letter queue (the function sends poison records to it; the mapping's on-failure destination)."
  value       = aws_sqs_queue.dlq.arn
}

output "dlq_url" {
  description = "URL of the consumer's dead-letter queue (the function's DEAD_LETTER_QUEUE_URL)."
  value       = aws_sqs_queue.dlq.id
}

output "dlq_name" {
  description = "Name of the consumer's dead-letter queue."
  value       = aws_sqs_queue.dlq.name
}

output "mapping" {
  description = "The event source mapping as deployed: source, starting position, batching, response types, bisection, retry and age bounds, on-failure destination (read by the terraform tests)."
  value = {
    event_source_arn                   = aws_lambda_event_source_mapping.this.event_source_arn
    starting_position                  = aws_lambda_event_source_mapping.this.starting_position
    starting_position_timestamp        = aws_lambda_event_source_mapping.this.starting_position_timestamp
    batch_size                         = aws_lambda_event_source_mapping.this.batch_size
    maximum_batching_window_in_seconds = aws_lambda_event_source_mapping.this.maximum_batching_window_in_seconds
    parallelization_factor             = aws_lambda_event_source_mapping.this.parallelization_factor
    function_response_types            = aws_lambda_event_source_mapping.this.function_response_types
    bisect_batch_on_function_error     = aws_lambda_event_source_mapping.this.bisect_batch_on_function_error
    maximum_retry_attempts             = aws_lambda_event_source_mapping.this.maximum_retry_attempts
    maximum_record_age_in_seconds      = aws_lambda_event_source_mapping.this.maximum_record_age_in_seconds
    on_failure_destination_arn         = aws_lambda_event_source_mapping.this.destination_config[0].on_failure[0].destination_arn
    dead_letter_queue_arn              = aws_sqs_queue.dlq.arn
  }
}
