# Commands people actually run. `just --list` shows them.

# Format the code
fmt:
    cargo fmt --all

# Lint: formatting and clippy, warnings are errors
lint:
    cargo fmt --all -- --check
    cargo clippy --all-targets -- -D warnings

# Unit and integration tests (the integration tests drive the built binary)
test:
    cargo test

# Build the release binary the bin/ launchers use
release:
    cargo build --release

# What CI runs on a fresh machine
ci:
    bash .ci/run
