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
      aws_cloudwatch_metric_alarm.api_5xx.alarm_name,
      aws_cloudwatch_metric_alarm.table_throttled_requests.alarm_name,
    ],
    [for a in aws_cloudwatch_metric_alarm.api_latency : a.alarm_name],
    [for a in aws_cloudwatch_metric_alarm.table_events : a.alarm_name],
    [for a in aws_cloudwatch_metric_alarm.delivery_failures : a.alarm_name],
    [for a in aws_cloudwatch_metric_alarm.lambda_errors : a.alarm_name],
    [for a in aws_cloudwatch_metric_alarm.function_iterator_age : a.alarm_name],
    [for a in aws_cloudwatch_metric_alarm.dead_letters : a.alarm_name],
  )
}

output "metrics" {
  description = "What each alarm watches, by alarm name: namespace, metrics (those of a metric-math alarm, in order), statistic, threshold and comparison."
  value = {
    for a in concat(
      [
        aws_cloudwatch_metric_alarm.iterator_age,
        aws_cloudwatch_metric_alarm.data_freshness,
        aws_cloudwatch_metric_alarm.partition_count_exceeded,
        aws_cloudwatch_metric_alarm.error_records,
        aws_cloudwatch_metric_alarm.curate_queue_age,
        aws_cloudwatch_metric_alarm.api_5xx,
        aws_cloudwatch_metric_alarm.table_throttled_requests,
      ],
      values(aws_cloudwatch_metric_alarm.delivery_failures),
      values(aws_cloudwatch_metric_alarm.api_latency),
      values(aws_cloudwatch_metric_alarm.table_events),
      values(aws_cloudwatch_metric_alarm.lambda_errors),
      values(aws_cloudwatch_metric_alarm.function_iterator_age),
      values(aws_cloudwatch_metric_alarm.dead_letters),
    ) :
    a.alarm_name => {
      namespace  = coalesce(a.namespace, one(distinct([for q in a.metric_query : q.metric[0].namespace if length(q.metric) > 0])))
      metrics    = a.metric_name != null && a.metric_name != "" ? [a.metric_name] : [for q in a.metric_query : q.metric[0].metric_name if length(q.metric) > 0]
      dimensions = a.metric_name != null && a.metric_name != "" ? [a.dimensions] : [for q in a.metric_query : q.metric[0].dimensions if length(q.metric) > 0]
      statistic  = coalesce(a.statistic, a.extended_statistic, "metric math")
      threshold  = a.threshold
      comparison = a.comparison_operator
      actions    = a.alarm_actions
    }
  }
}
