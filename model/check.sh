#!/usr/bin/env bash
# Model-checks the webhook's delivery protocol (webhook.pml, a model of webhook.go's deliver) with spin: every
# variant exhaustively, two at a time. The fenced protocol must verify; the old unfenced one, and each weakened
# assumption, must fail with a trail, printed in words. Needs spin and gcc (Debian: apt-get install spin gcc); it
# installs nothing. Exits non-zero if any variant does not come out as expected.
#
#   model/check.sh            every variant
#   model/check.sh main redis only those (names in the table below)
set -euo pipefail
cd "$(dirname "$0")"

for tool in spin gcc; do
  command -v "$tool" >/dev/null 2>&1 || { echo "check.sh: $tool not found (Debian: apt-get install spin gcc)" >&2; exit 2; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# name | expected outcome | spin -D flags | pan build flags | pan run flags | what it shows
#   pass: no error in the whole state space; full: pass, and every statement of a replica was reached (the
#   model is not vacuous); dup: a duplicate outside the named windows (the ATMOSTONCE assertion); cycle: a fair
#   run that never mails (an acceptance cycle).
variants=(
  "main|pass||-DSAFETY -DCOLLAPSE|-m20000 -w22|fenced, Redis reachable: at least once; at most once outside the crash and SMTP windows"
  "main4|pass|-DTRIES=4|-DSAFETY -DCOLLAPSE|-m20000 -w22|the same with 4 attempts before WorkOS's last retry instead of 3"
  "redis|full|-DREDIS|-DSAFETY -DCOLLAPSE|-m20000 -w22|fenced, Redis may fail any call: at least once; a duplicate only in a named window or the Redis one"
  "liveness|pass|-DLIVENESS -DREDIS|-DNOREDUCE -DNFAIR=3 -DCOLLAPSE|-m20000 -w22 -a -f|no retry bound, weak fairness, at most 2 faults of any kind: every run mails"
  "norenew|pass|-DNORENEW|-DSAFETY -DCOLLAPSE|-m20000 -w22|design note: without the renewal the fenced protocol still verifies (deliveryTimeout < webhookLease carries it)"
  "unfenced|dup|-DUNFENCED|-DSAFETY -DBFS -DCOLLAPSE|-w22|release, renewal and done unconditional (the old code): spin must find a duplicate"
  "strict-crash|dup|-DSTRICT_CRASH|-DSAFETY -DBFS -DCOLLAPSE|-w22|the crash window is real: a duplicate once it is not allowed"
  "strict-smtp|dup|-DSTRICT_SMTP|-DSAFETY -DBFS -DCOLLAPSE|-w22|the SMTP window is real: a duplicate once it is not allowed"
  "longdeadline|dup|-DLONGDEADLINE|-DSAFETY -DBFS -DCOLLAPSE|-w22|if deliveryTimeout were not below webhookLease: a duplicate"
  "nolease|cycle|-DLIVENESS -DNOLEASE|-DNOREDUCE -DNFAIR=3|-m20000 -w22 -a -f|claims without a lease: a killed replica's claim blocks the event for ever"
)

# verify NAME EXPECT DEFS CFLAGS PFLAGS: builds and runs one verifier in its own directory; writes result and trail.
verify() {
  local name=$1 expect=$2 defs=$3 cflags=$4 pflags=$5 dir=$work/$1 start end
  mkdir -p "$dir"
  cp webhook.pml "$dir/"
  cd "$dir"
  start=$(date +%s.%N)
  # shellcheck disable=SC2086 # the flags are word lists
  if ! { spin -a $defs webhook.pml && gcc -O2 -DMEMLIM=2048 $cflags -o pan pan.c; } >build.log 2>&1; then
    echo "FAIL build failed (build.log below)" >result
    cat build.log >>result
    return
  fi
  # shellcheck disable=SC2086
  ./pan $pflags >pan.log 2>&1 || true
  end=$(date +%s.%N)
  local errors states visited mem elapsed verdict
  errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' pan.log | tail -1)
  states=$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' pan.log | tail -1)
  visited=$(sed -n 's/.*states, stored (\([0-9.e+]*\) visited).*/\1/p' pan.log | tail -1)
  mem=$(sed -n 's/^ *\([0-9.]*\).total actual memory usage.*/\1/p' pan.log | tail -1)
  elapsed=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
  case "$expect" in
    pass) [ "$errors" = 0 ] && ! grep -q '^pan:[0-9]*: ' pan.log && verdict=ok ;;
    full) [ "$errors" = 0 ] && ! grep -q '^pan:[0-9]*: ' pan.log &&
      grep -A2 'unreached in proctype Replica' pan.log | grep -q '(1 of [0-9]* states)' && verdict=ok ;;
    dup) [ "$errors" = 1 ] && grep -q "assertion violated (mails<=(1+excused))" pan.log && verdict=ok ;;
    cycle) [ "$errors" = 1 ] && grep -q 'acceptance cycle' pan.log && verdict=ok ;;
  esac
  printf '%s %s errors=%s states=%s%s memory=%sMB time=%ss\n' "${verdict:-FAIL}" "$expect" "${errors:-?}" \
    "${states:-?}" "${visited:+ (visited $visited)}" "${mem:-?}" "$elapsed" >result
  if [ "${verdict:-}" != ok ]; then
    grep -E '^pan|errors:' pan.log >>result || true
  fi
  if [ -f webhook.pml.trail ]; then
    # The model's printf lines are the trail in words.
    # shellcheck disable=SC2086
    spin -t $defs webhook.pml 2>&1 | grep -E '^ +[A-Za-z<]|text of failed assertion' | sed 's/^ *//' >trail || true
  fi
}

selected=("$@")
jobs_running=0
for v in "${variants[@]}"; do
  IFS='|' read -r name expect defs cflags pflags _ <<<"$v"
  if [ ${#selected[@]} -gt 0 ] && [[ ! " ${selected[*]} " =~ \ $name\  ]]; then
    continue
  fi
  (verify "$name" "$expect" "$defs" "$cflags" "$pflags") &
  jobs_running=$((jobs_running + 1))
  if [ "$jobs_running" -ge 2 ]; then
    wait -n || true
    jobs_running=$((jobs_running - 1))
  fi
done
wait

echo "spin $(spin -V | sed -n 's/^Spin Version \([^ ]*\).*/\1/p'), webhook.pml: $(grep -c '' webhook.pml) lines"
echo "key values in the trails: 0 absent, 1-3 claimed by that replica, 4 done"
failed=0
for v in "${variants[@]}"; do
  IFS='|' read -r name expect defs _ _ what <<<"$v"
  [ -f "$work/$name/result" ] || continue
  printf '\n== %s (%s): %s\n' "$name" "${defs:-no flags}" "$what"
  cat "$work/$name/result"
  head -1 "$work/$name/result" | grep -q '^ok ' || failed=1
  if [ -s "$work/$name/trail" ]; then
    echo "-- trail:"
    # A cycle's trail repeats itself: its start and the first steps of the cycle are enough.
    awk '/START OF CYCLE/ { cycle = NR } { line[NR] = $0 }
      END {
        for (i = 1; i <= NR; i++)
          if (!cycle || i <= 10 || (i >= cycle && i < cycle + 10)) print "   " line[i]
          else if (i == 11 || i == cycle + 10) print "   ..."
      }' "$work/$name/trail"
  fi
done

if [ "$failed" -ne 0 ]; then
  echo; echo "check.sh: some variant did not come out as expected"; exit 1
fi
echo; echo "check.sh: every variant came out as expected"
