#!/usr/bin/env bash
# Builds every fuzz target into target/x86_64-unknown-linux-gnu/release/
# (where run-target.sh looks), instrumented for libFuzzer: coverage
# (sancov with inline 8-bit counters, PC table, compare tracing), the
# `fuzzing` cfg, debug assertions and overflow checks, optimized.
#
#   FUZZ_SANITIZER=none (default): plain cargo on the stable toolchain, no
#     cargo-fuzz needed (what CI's smoke run uses: it builds in a few
#     minutes of one core);
#   FUZZ_SANITIZER=address: cargo-fuzz with AddressSanitizer
#     (`RUSTC_BOOTSTRAP=1 cargo fuzz build -O -a`; installs cargo-fuzz if
#     missing), for long campaigns.
#
# Usage: tests/fuzz/build.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
case "${FUZZ_SANITIZER:-none}" in
    none)
        RUSTFLAGS="-Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares \
--cfg fuzzing -Cdebug-assertions -Coverflow-checks" \
            cargo build --release --bins --target x86_64-unknown-linux-gnu
        ;;
    address)
        if ! command -v cargo-fuzz >/dev/null 2>&1; then
            echo "build.sh: installing cargo-fuzz"
            cargo install cargo-fuzz --locked --version 0.13.2
        fi
        RUSTC_BOOTSTRAP=1 cargo fuzz build -O -a
        ;;
    *)
        echo "build.sh: FUZZ_SANITIZER=${FUZZ_SANITIZER} (want none or address)" >&2
        exit 2
        ;;
esac
