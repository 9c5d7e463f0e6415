output "database_name" {
  description = "Glue database (Athena: SELECT ... FROM <database>.hits WHERE dt = 'YYYY-MM-DD')."
  value       = aws_glue_catalog_database.this.name
}

output "table_names" {
  description = "Glue tables by dataset (hits, daily)."
  value       = { for k, t in aws_glue_catalog_table.this : k => t.name }
}
