output "database_name" {
  description = "Glue database (Athena: SELECT ... FROM <database>.hits WHERE dt = 'YYYY-MM-DD')."
  value       = aws_glue_catalog_database.this.name
}

output "table_names" {
  description = "Glue tables by dataset (hits, daily)."
  value       = { for k, t in aws_glue_catalog_table.this : k => t.name }
}

output "named_query_ids" {
  description = "Athena named queries by question (gender_split_per_day, top_visitors, hits_per_hour)."
  value       = { for k, q in aws_athena_named_query.this : k => q.id }
}

output "database_arn" {
  description = "ARN of the Glue database."
  value       = aws_glue_catalog_database.this.arn
}

output "table_arns" {
  description = "ARNs of the Glue tables by dataset (hits, daily)."
  value       = { for k, t in aws_glue_catalog_table.this : k => t.arn }
}
