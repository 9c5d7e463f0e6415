locals {
  provisioned = var.capacity_mode == "PROVISIONED"

  # Application Auto Scaling tracks each dimension of the table separately.
  scaled_dimensions = local.provisioned ? {
    read = {
      dimension = "dynamodb:table:ReadCapacityUnits"
      metric    = "DynamoDBReadCapacityUtilization"
      min       = var.provisioned_capacity.read_min
      max       = var.provisioned_capacity.read_max
    }
    write = {
      dimension = "dynamodb:table:WriteCapacityUnits"
      metric    = "DynamoDBWriteCapacityUtilization"
      min       = var.provisioned_capacity.write_min
      max       = var.provisioned_capacity.write_max
    }
  } : {}
}

resource "aws_dynamodb_table" "this" {
  name                        = var.name
  billing_mode                = local.provisioned ? "PROVISIONED" : "PAY_PER_REQUEST"
  hash_key                    = var.hash_key
  deletion_protection_enabled = var.deletion_protection

  # Provisioned mode starts at the minimum; auto scaling moves it from there.
  read_capacity  = local.provisioned ? var.provisioned_capacity.read_min : null
  write_capacity = local.provisioned ? var.provisioned_capacity.write_min : null

  attribute {
    name = var.hash_key
    type = "S"
  }

  ttl {
    attribute_name = var.ttl_attribute
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }
  #checkov:skip=CKV_AWS_119:encrypted with the AWS managed key by default (no per-role KMS grants); set kms_key_arn for a CMK

  # Throughput the table can serve at once (pre-warmed partitions), e.g.
  # for the daily job's write burst on a table that never saw it.
  dynamic "warm_throughput" {
    for_each = var.warm_throughput == null ? [] : [var.warm_throughput]

    content {
      read_units_per_second  = warm_throughput.value.read_units_per_second
      write_units_per_second = warm_throughput.value.write_units_per_second
    }
  }

  tags = merge(var.tags, { Name = var.name, module = "dynamodb" })

  lifecycle {
    # Auto scaling owns the provisioned capacity once the table exists.
    ignore_changes = [read_capacity, write_capacity]
  }
}

resource "aws_appautoscaling_target" "this" {
  for_each = local.scaled_dimensions

  service_namespace  = "dynamodb"
  resource_id        = "table/${aws_dynamodb_table.this.name}"
  scalable_dimension = each.value.dimension
  min_capacity       = each.value.min
  max_capacity       = each.value.max

  tags = merge(var.tags, { Name = "${var.name}-${each.key}", module = "dynamodb" })
}

resource "aws_appautoscaling_policy" "this" {
  for_each = local.scaled_dimensions

  name               = "${var.name}-${each.key}-utilization"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this[each.key].service_namespace
  resource_id        = aws_appautoscaling_target.this[each.key].resource_id
  scalable_dimension = aws_appautoscaling_target.this[each.key].scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value = var.provisioned_capacity.target_utilization_percent

    predefined_metric_specification {
      predefined_metric_type = each.value.metric
    }
  }
}
