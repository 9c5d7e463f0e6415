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
