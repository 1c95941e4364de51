#!/usr/bin/env bash
# Keeps `make run` true: the demo it runs must release secrets to the pinned program and refuse
# the modified copy.
source "$(dirname "$0")/lib.sh"
DEMO_ONLY=1 DEMO_ADDR=127.0.0.1:0 bash "$(dirname "$0")/../../scripts/demo" "$CUSTOS" > "$WORK/demo.log" 2>&1 ||
  { cat "$WORK/demo.log"; fail "the demo failed"; }
grep -q 'app: DB_PASSWORD received' "$WORK/demo.log" || fail "the pinned program did not get its secret"
grep -q 'policy.denied: sim.mrenclave' "$WORK/demo.log" || fail "the modified program was not refused with a reason"
pass "make run's demo: release to the pinned program, refusal of the modified copy"
finish
