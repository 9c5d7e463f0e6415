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

# Run the transform and the stream consumer (against moto server) under cargo lambda watch and invoke each with a fixture.
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

# Start the deployed daily job for a date (YYYY-MM-DD; default: yesterday UTC), asynchronously:
# it runs for minutes, longer than the AWS CLI's 60 s read timeout, after which the CLI would
# retry a synchronous invoke and start the job again. Follow it with `just logs fn=daily`.
daily date="":
    #!/usr/bin/env bash
    set -euo pipefail
    d="{{date}}"; d="${d#date=}"; [[ -n "$d" ]] || d=$(date -u -d yesterday +%F)
    fn=$(terraform -chdir=terraform output -json function_names | jq -r .daily)
    aws lambda invoke --function-name "$fn" --invocation-type Event \
        --cli-binary-format raw-in-base64-out --payload "{\"date\":\"$d\"}" /dev/null >/dev/null
    echo "daily job for $d started (asynchronous; failed runs are retried twice, then go to the $fn-async-dlq queue)"
    echo "follow it: just logs fn=daily   (\"daily run finished\" with its counts, then the platform.report record: duration, memory)"

# Follow a deployed function's logs: fn = http, transform, consumer, curate, daily, erase (or api for the access logs).
logs fn="http":
    #!/usr/bin/env bash
    set -euo pipefail
    fn="{{fn}}"; fn="${fn#fn=}"
    group=$(terraform -chdir=terraform output -json log_groups | jq -er --arg fn "$fn" '.[$fn]')
    aws logs tail "$group" --follow --format short

# Lint the GitHub workflows (actionlint, zizmor).
lint-workflows:
    scripts/lint-workflows
