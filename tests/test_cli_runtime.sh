#!/usr/bin/env bash
# The cllm binary: version, help, exit codes, `devices`, a SPEC that matches nothing, no
# OpenCL platform at all, and a broken kernel loaded through CLLM_KERNEL_DIR.
set -u
. "$(dirname "$0")/lib.sh"

expect 0 "--version" "$CLLM_BIN" --version
expect_out "cllm 0" "$CLLM_BIN" --version
expect 0 "--help" "$CLLM_BIN" --help
expect 2 "no command" "$CLLM_BIN"
expect 2 "unknown command" "$CLLM_BIN" frobnicate
expect_err "is not a command" "$CLLM_BIN" frobnicate
expect 0 "devices --help" "$CLLM_BIN" devices --help
expect_out "--device SPEC" "$CLLM_BIN" devices --help
expect 2 "unknown flag" "$CLLM_BIN" devices --bogus
expect_err "unknown option '--bogus'" "$CLLM_BIN" devices --bogus
expect 2 "stray argument" "$CLLM_BIN" devices extra

# No OpenCL platform at all: one clear line, exit 1 (runs before the skip check on purpose).
empty=$(mktemp -d)
OCL_ICD_VENDORS=$empty expect 1 "no platform" "$CLLM_BIN" devices
OCL_ICD_VENDORS=$empty expect_err "no OpenCL platform found" "$CLLM_BIN" devices
lines=$(OCL_ICD_VENDORS=$empty "$CLLM_BIN" devices 2>&1 | wc -l)
check "[ $lines -eq 1 ]" "the no-platform error is one line (got $lines)"
rmdir "$empty"

skip_without_opencl

expect 0 "devices" "$CLLM_BIN" devices
expect_out "device 0:" "$CLLM_BIN" devices
expect_out '"compute_units"' "$CLLM_BIN" devices --json
expect_out '"fp64"' "$CLLM_BIN" devices --json
expect 0 "devices --device 0" "$CLLM_BIN" devices --device 0
expect 1 "no match" "$CLLM_BIN" devices --device no-such-device-xyz
expect_err "no OpenCL device matches --device 'no-such-device-xyz'" "$CLLM_BIN" devices --device no-such-device-xyz
CLLM_DEVICE=no-such-device-xyz expect 1 "no match via env" "$CLLM_BIN" devices
expect 1 "no platform match" "$CLLM_BIN" devices --platform no-such-platform
expect_err "no OpenCL platform matches --platform 'no-such-platform'" "$CLLM_BIN" devices --platform no-such-platform

# Every kernel builds, cold then warm from a private cache.
cache=$(fresh_tmp cli-runtime-cache)
XDG_CACHE_HOME=$cache expect_out "built" "$CLLM_BIN" devices --check
XDG_CACHE_HOME=$cache expect_out "cached" "$CLLM_BIN" devices --check
XDG_CACHE_HOME=$cache CLLM_CACHE=0 expect_out "program cache: off" "$CLLM_BIN" devices --check

# A broken kernel through CLLM_KERNEL_DIR: file name, options and the build log are shown.
kdir=$(fresh_tmp cli-runtime-kernels)
cp "$CLLM_SOURCE_DIR"/cl/*.cl "$kdir"/
cat >> "$kdir/util.cl" <<'CL'
__kernel void broken_on_purpose(__global float *x) { x[0] = undeclared_identifier_42; }
CL
CLLM_KERNEL_DIR=$kdir CLLM_CACHE=0 expect 1 "broken kernel" "$CLLM_BIN" devices --check
CLLM_KERNEL_DIR=$kdir CLLM_CACHE=0 expect_err "cl/util.cl from CLLM_KERNEL_DIR=$kdir failed to build" "$CLLM_BIN" devices --check
CLLM_KERNEL_DIR=$kdir CLLM_CACHE=0 expect_err "undeclared_identifier_42" "$CLLM_BIN" devices --check
CLLM_KERNEL_DIR=$kdir CLLM_CACHE=0 expect_err "options '-cl-std=CL1.2'" "$CLLM_BIN" devices --check
CLLM_KERNEL_DIR=$kdir/missing expect 2 "kernel dir missing" "$CLLM_BIN" devices --check
finish
