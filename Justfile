# Gender Service tasks. `just` itself: `pip install rust-just` (or cargo install just).

# Run the local pipeline on ./data (the product's embedded default).
dev *args:
    cargo run --release -p gender-service -- serve {{args}}

# Every check and test (what CI runs).
test:
    scripts/test

# Build every Lambda for arm64 into target/lambda/<binary>/bootstrap.zip.
build-lambdas:
    scripts/build-lambdas

# Run the built transform function under cargo lambda watch and invoke it with a fixture.
lambda-smoke:
    scripts/lambda-smoke

# Goose load test (SPEC 12): `just loadtest rps=1000`, `just loadtest rps=1000 host=https://...`,
# `just loadtest erase_every=10` (erasures alongside, SPEC 17);
# key=value parameters as listed in scripts/loadtest (reports under target/loadtest/).
loadtest *args:
    scripts/loadtest {{args}}

# Build the arm64 zips, then create or update the AWS stack (extra args go to terraform apply, e.g. -var environment=prod).
deploy *args: build-lambdas
    terraform -chdir=terraform init -input=false
    terraform -chdir=terraform apply {{args}}

# Build the zips and show what terraform would change.
plan *args: build-lambdas
    terraform -chdir=terraform init -input=false
    terraform -chdir=terraform plan {{args}}

# Tear the AWS stack down (buckets must be empty, or apply -var force_destroy=true first).
destroy *args:
    terraform -chdir=terraform destroy {{args}}

# Run the deployed daily job for a date (YYYY-MM-DD; default: yesterday UTC).
# One call, never retried by the CLI, that waits out the invocation (15 min at
# most): the CLI's default 60 s read timeout and retries would start the job
# again while it runs (the lease refuses those, but the CLI would show a
# refusal instead of the run's result).
daily date="":
    #!/usr/bin/env bash
    set -euo pipefail
    d="{{date}}"; d="${d#date=}"; [[ -n "$d" ]] || d=$(date -u -d yesterday +%F)
    fn=$(terraform -chdir=terraform output -json function_names | jq -r .daily)
    AWS_MAX_ATTEMPTS=1 aws lambda invoke --cli-read-timeout 960 --function-name "$fn" --cli-binary-format raw-in-base64-out --payload "{\"date\":\"$d\"}" /dev/stdout

# Follow a deployed function's logs: fn = http, transform, curate, daily, erase (or api for the access logs).
logs fn="http":
    #!/usr/bin/env bash
    set -euo pipefail
    fn="{{fn}}"; fn="${fn#fn=}"
    group=$(terraform -chdir=terraform output -json log_groups | jq -er --arg fn "$fn" '.[$fn]')
    aws logs tail "$group" --follow --format short

# Lint the GitHub workflows (actionlint, zizmor).
lint-workflows:
    scripts/lint-workflows
