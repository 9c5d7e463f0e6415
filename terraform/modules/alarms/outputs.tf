output "topic_arn" {
  description = "SNS topic that receives every alarm."
  value       = aws_sns_topic.this.arn
}

output "alarm_names" {
  description = "Names of all alarms."
  value = concat(
    [
      aws_cloudwatch_metric_alarm.iterator_age.alarm_name,
      aws_cloudwatch_metric_alarm.data_freshness.alarm_name,
      aws_cloudwatch_metric_alarm.partition_count_exceeded.alarm_name,
      aws_cloudwatch_metric_alarm.error_records.alarm_name,
      aws_cloudwatch_metric_alarm.curate_queue_age.alarm_name,
    ],
    [for a in aws_cloudwatch_metric_alarm.delivery_failures : a.alarm_name],
    [for a in aws_cloudwatch_metric_alarm.lambda_errors : a.alarm_name],
    [for a in aws_cloudwatch_metric_alarm.dead_letters : a.alarm_name],
  )
}
