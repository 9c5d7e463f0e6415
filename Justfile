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

# Goose load test (SPEC 12): `just loadtest rps=1000`, `just loadtest rps=1000 host=https://...`;
# key=value parameters as listed in scripts/loadtest (reports under target/loadtest/).
loadtest *args:
    scripts/loadtest {{args}}
