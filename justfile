# Commands people actually run. `just --list` shows them.

# Format the code
fmt:
    cargo fmt --all

# Lint: formatting and clippy, warnings are errors (the opt-in test binary too)
lint:
    cargo fmt --all -- --check
    cargo clippy --all-targets -- -D warnings
    cargo clippy --test real_programs -- -D warnings

# Unit tests and the integration suite (tests/integration: drives the built binary)
test:
    cargo test

# The opt-in suite: the real Codex CLI and the patched bash, installed from npm
# into ~/.cache/tether on first use (tests/real_programs)
test-real:
    cargo test --test real_programs

# Build the release binary the bin/ launchers use (LTO, no debuginfo: what ships)
release:
    cargo build --release

# The release build with symbols, for perf and flame graphs (target/profiling/tether)
profiling:
    cargo build --profile profiling

# The long hostile-input, load and fault variants (minutes; one at a time)
soak:
    cargo test --test integration -- --ignored --test-threads=1 hostile:: load:: faults::

# Fuzz one target (decode_line, dispatch, paths, sandbox_policy, environments) for
# SECONDS; needs `cargo install cargo-fuzz`. Seeds: fixtures/fuzz/TARGET
fuzz target="decode_line" seconds="600":
    RUSTC_BOOTSTRAP=1 cargo fuzz run {{target}} fuzz/corpus/{{target}} fixtures/fuzz/{{target}} -- -max_total_time={{seconds}} -timeout=20 -rss_limit_mb=4096 -print_final_stats=1

# Build every fuzz target (checks that they compile)
fuzz-build:
    RUSTC_BOOTSTRAP=1 cargo fuzz build

# What CI runs on a fresh machine
ci:
    bash .ci/run

# Benchmark this build alone (developer tool, see BENCHMARKS.md). `just bench --quick`
bench *ARGS:
    cargo bench --bench vs -- {{ARGS}}

# Benchmark against the reference Codex exec-server 0.169.0 (installed from npm into
# ~/.cache/tether/codex-0.169.0 when missing) and regenerate BENCHMARKS.md and its chart.
# `just bench-vs-codex --quick` for a smoke run (writes nothing then).
bench-vs-codex *ARGS:
    #!/usr/bin/env bash
    set -euo pipefail
    dir="$HOME/.cache/tether/codex-0.169.0"
    codex="$dir/node_modules/@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex"
    if [ ! -x "$codex" ]; then
        mkdir -p "$dir"
        npm install --prefix "$dir" --no-audit --no-fund @openai/codex@0.169.0
    fi
    export CODEX_HOME="$(mktemp -d -p "$HOME" .tether-bench-codex-home.XXXXXX)"
    trap 'rm -rf "$CODEX_HOME"' EXIT
    out=()
    case " {{ARGS}} " in
        *" --quick "*) ;;
        *) out=(--markdown BENCHMARKS.md --svg docs/bench-chunks.svg) ;;
    esac
    cargo bench --bench vs -- --baseline "$codex exec-server --listen stdio" \
        --baseline-name codex --command-label "just bench-vs-codex" "${out[@]}" {{ARGS}}
