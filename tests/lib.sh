# Helpers for the shell tests (sourced). CLLM_BIN and CLLM_TEST_TMP come from ctest.
fails=0
checks=0
: "${CLLM_TEST_TMP:=/tmp/cllm-test}"

# expect CODE NAME CMD...: the command exits with CODE.
expect() {
  local want=$1 name=$2; shift 2
  checks=$((checks + 1))
  "$@" >/tmp/cllm-test-out.$$ 2>/tmp/cllm-test-err.$$
  local got=$?
  if [ "$got" != "$want" ]; then
    fails=$((fails + 1))
    echo "FAIL ($name): '$*' exited $got, expected $want" >&2
    sed 's/^/  stdout: /' /tmp/cllm-test-out.$$ | head -20 >&2
    sed 's/^/  stderr: /' /tmp/cllm-test-err.$$ | head -20 >&2
  fi
  rm -f /tmp/cllm-test-out.$$ /tmp/cllm-test-err.$$
}

# expect_out TEXT CMD...: stdout contains TEXT (fixed string).
expect_out() {
  local text=$1; shift
  checks=$((checks + 1))
  local out
  out=$("$@" 2>/dev/null)
  if ! grep -qF -- "$text" <<<"$out"; then
    fails=$((fails + 1))
    echo "FAIL: stdout of '$*' lacks '$text'" >&2
    head -20 <<<"$out" | sed 's/^/  stdout: /' >&2
  fi
}

# expect_err TEXT CMD...: stderr contains TEXT (fixed string).
expect_err() {
  local text=$1; shift
  checks=$((checks + 1))
  local err
  err=$("$@" 2>&1 >/dev/null)
  if ! grep -qF -- "$text" <<<"$err"; then
    fails=$((fails + 1))
    echo "FAIL: stderr of '$*' lacks '$text'" >&2
    head -40 <<<"$err" | sed 's/^/  stderr: /' >&2
  fi
}

# check 'TEST-EXPRESSION' MESSAGE
check() {
  checks=$((checks + 1))
  if ! eval "$1"; then
    fails=$((fails + 1))
    echo "FAIL: $2" >&2
  fi
}

fresh_tmp() {
  local d="$CLLM_TEST_TMP/$1"
  rm -rf "$d" && mkdir -p "$d" && echo "$d"
}

# Exit 77 (skipped) when no OpenCL platform exists at all.
skip_without_opencl() {
  if "$CLLM_BIN" devices 2>&1 | grep -q "no OpenCL platform found"; then
    echo "skipped: no OpenCL platform" >&2
    exit 77
  fi
}

finish() {
  if [ "$fails" -gt 0 ]; then
    echo "FAILED: $fails of $checks checks" >&2
    exit 1
  fi
  echo "ok: $checks checks"
  exit 0
}
