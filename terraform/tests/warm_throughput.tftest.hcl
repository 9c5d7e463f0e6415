# Warm throughput of the profiles table: hashicorp/aws 6.x only (the
# argument does not exist in 5.x, so an offline run against a 5.x provider
# mirror leaves this file out; tests/contract/tf_test_copy.py says so).

mock_provider "aws" {
  source = "./tests/mocks"
}

mock_provider "random" {}

variables {
  lambda_artifacts_dir = "tests/artifacts"
}

run "warm_throughput" {
  command = apply

  variables {
    dynamodb_warm_throughput = { read_units_per_second = 12000, write_units_per_second = 12000 }
  }

  assert {
    condition     = module.profiles.capacity.warm_throughput == { read_units_per_second = 12000, write_units_per_second = 12000 }
    error_message = "Warm throughput: ${jsonencode(module.profiles.capacity)}"
  }
}
