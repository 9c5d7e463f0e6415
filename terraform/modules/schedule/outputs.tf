output "rule_name" {
  description = "EventBridge rule name."
  value       = aws_cloudwatch_event_rule.this.name
}

output "dlq_name" {
  description = "Name of the queue of undeliverable schedule events."
  value       = aws_sqs_queue.dlq.name
}
