#!/usr/bin/env bash
# Smoke test of the real `desk tui` in a detached tmux session: open, find the 25-delta put, buy it through
# the ticket, see it in positions and in the log, quit. Prints OK lines; exits non-zero on the first failure.
#   PY=.venv/bin/python tests/ui/tmux_smoke.sh [OUTDIR]
set -euo pipefail
PY=${PY:-.venv/bin/python}
OUT=${1:-$(mktemp -d)}
S=desk-tui-smoke-$$
export XDG_CONFIG_HOME="$OUT/config" XDG_DATA_HOME="$OUT/data"   # never read the user's desk.toml
mkdir -p "$OUT"
tmux new-session -d -s "$S" -x 160 -y 45 "TERM=xterm-256color $PY -m app.cli tui --seed 7; echo EXITED \$? > '$OUT/exit'; sleep 2"
trap 'tmux kill-session -t "$S" 2>/dev/null || true' EXIT

cap() { tmux capture-pane -p -t "$S" > "$OUT/$1.txt"; }
wait_for() {  # wait_for NAME REGEX [tries of 0.2 s]
  local name=$1 re=$2 tries=${3:-150}
  for _ in $(seq 1 "$tries"); do
    cap "$name"
    if grep -Eq "$re" "$OUT/$name.txt"; then echo "OK $name"; return 0; fi
    sleep 0.2
  done
  echo "FAIL $name: /$re/ not on screen"; cat "$OUT/$name.txt"; exit 1
}
wait_gone() {  # wait_gone NAME REGEX [tries of 0.2 s]: the text has left the screen
  local name=$1 re=$2 tries=${3:-150}
  for _ in $(seq 1 "$tries"); do
    cap "$name"
    if ! grep -Eq "$re" "$OUT/$name.txt"; then echo "OK $name"; return 0; fi
    sleep 0.2
  done
  echo "FAIL $name: /$re/ still on screen"; cat "$OUT/$name.txt"; exit 1
}

wait_for chain 'Strike' 250                         # chain painted
wait_for chain_rows '[0-9]{2},[0-9]{3} +[0-9]' 100   # strikes with prices
tmux send-keys -t "$S" d; wait_for prompt 'Go to delta'
tmux send-keys -t "$S" Enter; wait_for jumped 'delta nearest -0\.25'   # the prompt is gone, cursor on the put
tmux send-keys -t "$S" b; wait_for ticket 'What-if margin'
NAME=$(grep -Eo 'BTC-[0-9]+[A-Z]{3}[0-9]{2}-[0-9]+-P' "$OUT/ticket.txt" | head -1)
[ -n "$NAME" ] || { echo "FAIL ticket: no put on the ticket"; exit 1; }
echo "OK instrument $NAME"
# The ticket closes once the order is accepted (a reject keeps it open with the reason: shown on failure).
# The "SENT" toast is not waited for: it times out after a few seconds and a loaded machine may miss it.
tmux send-keys -t "$S" C-s; wait_gone sent 'What-if margin'
tmux send-keys -t "$S" 2; wait_for positions "^ *$NAME +0\.1 "
tmux send-keys -t "$S" 5; wait_for log "FILL +buy 0\.1 $NAME"
grep -o 'READY.*s)' "$OUT/log.txt" || true     # start-up time to a populated chain, as the terminal measured it
tmux send-keys -t "$S" q
for _ in $(seq 1 150); do [ -f "$OUT/exit" ] && break; sleep 0.2; done
grep -q "EXITED 0" "$OUT/exit" && echo "OK exited" || { echo "FAIL exit: $(cat "$OUT/exit" 2>/dev/null)"; exit 1; }
