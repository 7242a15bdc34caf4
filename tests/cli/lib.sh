# Shared harness of the CLI test scripts (sourced): a scratch directory, pass/fail counters and
# expect_error. Callers set `src` and `bin` first and end with `finish NAME`.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
pass() { echo "ok   $1"; }
fail() { echo "FAIL $1"; fails=$((fails + 1)); }

# expect_error NAME TEXT CMD...: exit status 1 and exactly one stderr line, starting with
# "lowbit: error: " and containing TEXT (a fixed string).
expect_error() {
  local name=$1 word=$2
  shift 2
  "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  if [ "$rc" -eq 1 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -qF -- "$word" "$tmp/err" &&
     grep -q "^lowbit: error: " "$tmp/err"; then
    pass "$name"
  else
    fail "$name (rc=$rc, stderr: $(head -c 300 "$tmp/err"))"
  fi
}

# finish NAME: the summary line and the exit status.
finish() {
  if [ "$fails" -ne 0 ]; then
    echo "$fails $1 check(s) failed"
    exit 1
  fi
  echo "all $1 checks passed"
  exit 0
}
