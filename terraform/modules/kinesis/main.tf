resource "aws_kinesis_stream" "this" {
  name             = var.name
  shard_count      = var.stream_mode == "PROVISIONED" ? var.shard_count : null
  retention_period = var.retention_hours

  # Server-side encryption with the AWS managed key: producers and Firehose
  # need no KMS permissions for it.
  encryption_type = "KMS"
  kms_key_id      = "alias/aws/kinesis"
  #checkov:skip=CKV_AWS_185:the AWS managed key (alias/aws/kinesis) encrypts at rest without per-role KMS grants; a CMK can replace it later

  stream_mode_details {
    stream_mode = var.stream_mode
  }

  tags = merge(var.tags, { Name = var.name, module = "kinesis" })
}
