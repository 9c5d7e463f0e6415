locals {
  # One table per curated dataset (SPEC 6 and 7), both partitioned by dt.
  tables = {
    hits = {
      description = "Curated hits (SPEC 6): one row per valid hit."
      prefix      = "curated/hits/"
      columns = [
        { name = "clientid", type = "string" },
        { name = "page_gender", type = "string" },
        { name = "event_time", type = "timestamp" },
        { name = "hit_id", type = "string" },
      ]
    }
    daily = {
      description = "Daily rollups (SPEC 7): hits per visitor and day."
      prefix      = "curated/daily/"
      columns = [
        { name = "clientid", type = "string" },
        { name = "m", type = "bigint" },
        { name = "f", type = "bigint" },
      ]
    }
  }
}

locals {
  # The README's DuckDB questions (queries/*.sql) for Athena, over the tables above.
  named_queries = {
    gender_split_per_day = "Gender split per day, last 14 days, from the daily rollups."
    top_visitors         = "The 20 visitors with the most hits over the last 7 days."
    hits_per_hour        = "Hits per UTC hour by page gender, yesterday and today."
  }
}

resource "aws_glue_catalog_database" "this" {
  name        = var.database_name
  description = "Gender Service curated data (Athena)."

  tags = merge(var.tags, { Name = var.database_name, module = "glue" })
}

resource "aws_glue_catalog_table" "this" {
  for_each = local.tables

  database_name = aws_glue_catalog_database.this.name
  name          = each.key
  description   = each.value.description
  table_type    = "EXTERNAL_TABLE"

  parameters = {
    EXTERNAL                      = "TRUE"
    classification                = "parquet"
    "projection.enabled"          = "true"
    "projection.dt.type"          = "date"
    "projection.dt.format"        = "yyyy-MM-dd"
    "projection.dt.range"         = "${var.projection_start_date},NOW"
    "projection.dt.interval"      = "1"
    "projection.dt.interval.unit" = "DAYS"
    "storage.location.template"   = "s3://${var.curated_bucket_name}/${each.value.prefix}dt=$${dt}/"
  }

  partition_keys {
    name = "dt"
    type = "string"
  }

  storage_descriptor {
    location      = "s3://${var.curated_bucket_name}/${each.value.prefix}"
    input_format  = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
    output_format = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"

    ser_de_info {
      serialization_library = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
      parameters = {
        "serialization.format" = "1"
      }
    }

    dynamic "columns" {
      for_each = each.value.columns
      content {
        name = columns.value.name
        type = columns.value.type
      }
    }
  }
}

resource "aws_athena_named_query" "this" {
  for_each = local.named_queries

  name        = "${var.database_name}-${replace(each.key, "_", "-")}"
  description = each.value
  database    = aws_glue_catalog_database.this.name
  workgroup   = var.athena_workgroup
  query       = templatefile("${path.module}/queries/${each.key}.sql", { database = aws_glue_catalog_database.this.name })
}
