output "queue_arn" {
  description = "ARN of the curate queue (the curate role may receive from it)."
  value       = aws_sqs_queue.this.arn
}

output "queue_name" {
  description = "Name of the curate queue."
  value       = aws_sqs_queue.this.name
}

output "dlq_name" {
  description = "Name of the curate dead-letter queue (messages that failed max_receive_count times)."
  value       = aws_sqs_queue.dlq.name
}

output "dlq_url" {
  description = "URL of the curate dead-letter queue (for inspection and redrive)."
  value       = aws_sqs_queue.dlq.id
}
