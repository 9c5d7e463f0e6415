output "api_url" {
  description = "Base URL of the HTTP API, no trailing slash: POST <api_url>/hits, GET <api_url>/gender/{clientid}."
  value       = module.api.url
}

output "function_url" {
  description = "The browser front door (http_function_url.enabled): the gender-http function URL without a trailing slash, or null."
  value       = try(module.http_function_url[0].url, null)
}

output "api_key" {
  description = "The admin key: SPEC 4's x-api-key credential, every route (SPEC 18). Read it with: terraform output -raw api_key (or from SSM, see api_key_parameter)."
  value       = random_password.api_key.result
  sensitive   = true
}

output "api_key_parameter" {
  description = "SSM SecureString holding the API key: aws ssm get-parameter --with-decryption --name <this>."
  value       = aws_ssm_parameter.api_key.name
}

output "ingest_key" {
  description = "The ingest key (SPEC 18): POST /hits only, for tracker.js tags in pages (terraform output -raw ingest_key)."
  value       = random_password.ingest_key.result
  sensitive   = true
}

output "ingest_key_parameter" {
  description = "The SSM SecureString parameter holding the ingest key."
  value       = aws_ssm_parameter.ingest_key.name
}

output "read_key" {
  description = "The read key (SPEC 18): GET /gender and GET /erasures, for a site's backend (terraform output -raw read_key)."
  value       = random_password.read_key.result
  sensitive   = true
}

output "read_key_parameter" {
  description = "The SSM SecureString parameter holding the read key."
  value       = aws_ssm_parameter.read_key.name
}

output "raw_bucket" {
  description = "Raw bucket (raw/dt=YYYY-MM-DD/, errors/)."
  value       = module.raw_bucket.name
}

output "curated_bucket" {
  description = "Curated bucket (curated/hits/, curated/daily/, curate's dedup/index)."
  value       = module.curated_bucket.name
}

output "backup_bucket" {
  description = "Firehose source backup bucket (source/)."
  value       = module.backup_bucket.name
}

output "profiles_table" {
  description = "DynamoDB profiles table."
  value       = module.profiles.name
}

output "hits_stream" {
  description = "Kinesis Data Stream of accepted hits."
  value       = module.stream.name
}

output "delivery_stream" {
  description = "Firehose delivery stream."
  value       = module.delivery.name
}

output "function_names" {
  description = "Lambda function names by role."
  value = {
    http      = module.http.function_name
    transform = module.transform.function_name
    consumer  = module.consumer.function_name
    curate    = module.curate.function_name
    daily     = module.daily.function_name
    erase     = module.erase.function_name
  }
}

output "log_groups" {
  description = "Log groups: one per function plus the API access logs."
  value = {
    http      = module.http.log_group_name
    transform = module.transform.log_group_name
    consumer  = module.consumer.log_group_name
    curate    = module.curate.log_group_name
    daily     = module.daily.log_group_name
    erase     = module.erase.log_group_name
    api       = module.api.access_log_group_name
  }
}

output "consumer_dead_letter_queue_url" {
  description = "The stream consumer's dead-letter queue: poison records (with their data) and the shard ranges the mapping discarded (docs/DEPLOY.md, \"The stream consumer\")."
  value       = module.consumer_trigger.dlq_url
}

output "curate_dead_letter_queue_url" {
  description = "Curate messages that failed every retry (inspect, then redrive)."
  value       = module.curate_trigger.dlq_url
}

output "erasure_dead_letter_queue_url" {
  description = "Erasure ids that failed every retry (inspect, then redrive; their log entries stay pending)."
  value       = module.erase_queue.dlq_url
}

output "erasure_salt_parameter" {
  description = "SSM parameter holding the erasure log's secret salt (clientid hashes)."
  value       = aws_ssm_parameter.erasure_salt.name
}

output "glue_database" {
  description = "Glue database for Athena (tables hits and daily, partition projection on dt)."
  value       = module.glue.database_name
}

output "athena_named_queries" {
  description = "Athena named queries (workgroup primary) by question: gender_split_per_day, top_visitors, hits_per_hour."
  value       = module.glue.named_query_ids
}

output "alarm_topic_arn" {
  description = "SNS topic receiving every alarm."
  value       = module.alarms.topic_arn
}
