# Lock file of the scratch copy tests/contract/tf_test_copy.py makes for
# `terraform test` against a provider mirror holding hashicorp/aws 5.100.0:
# `terraform providers lock -fs-mirror=<mirror> -platform=linux_amd64` there.
# The h1 hash is the linux_amd64 package's, the same the registry's signed
# release gives. Not terraform/'s lock file (docs/DEPLOY.md, "Provider
# versions and the lock file").

provider "registry.terraform.io/hashicorp/aws" {
  version     = "5.100.0"
  constraints = "5.100.0"
  hashes = [
    "h1:edXOJWE4ORX8Fm+dpVpICzMZJat4AX0VRCAy/xkcOc0=",
  ]
}
