#!/usr/bin/env bash
# Log capture throughput: one job writing lines as fast as it can, captured
# by upkeep in pty mode and in pipe mode, against the physical limits:
# a minimal pty-to-file copier (bench/ptycopy.c) and `writer | cat > file`.
# Prints a Markdown table. Usage: bench/logs.sh [MiB] (default 200).
set -euo pipefail
cd "$(dirname "$0")/.."
MIB=${1:-200}
BYTES=$((MIB * 1024 * 1024))
cargo build --release -q
UPKEEP=$PWD/target/release/upkeep
WORK=$(mktemp -d)
trap 'kill $(cat "$WORK/daemon.pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$WORK"' EXIT
cc -O2 -o "$WORK/ptycopy" bench/ptycopy.c -lutil

# The writer: 64-byte lines, as fast as `yes` goes.
LINE=$(printf 'log line %054d' 0)
writer() { yes "$LINE" | head -c "$BYTES"; }
export -f writer; export LINE BYTES

now() { date +%s.%N; }
mibs() { awk -v b="$BYTES" -v t="$1" 'BEGIN { printf "%.0f", b / 1048576 / t }'; }
cpu() { awk '{ print ($14 + $15) / 100 }' "/proc/$1/stat"; }

best() { # best of 3 runs of "$@", in seconds
    local b=999999 t0 t1 d
    for _ in 1 2 3; do
        t0=$(now); "$@"; t1=$(now)
        d=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
        b=$(awk -v a="$b" -v d="$d" 'BEGIN { print (d < a) ? d : a }')
    done
    echo "$b"
}

pipe_limit() { bash -c writer | cat > "$WORK/cat.out"; }
pty_limit() { "$WORK/ptycopy" "$WORK/pty.out" bash -c writer; }

upkeep_run() { # $1: pty|pipe
    rm -f "$WORK/log/w.log"
    UPKEEP_SOCKET=$WORK/sock "$UPKEEP" start w >/dev/null
    local deadline=$((SECONDS + 120))
    until [ "$(stat -c %s "$WORK/log/w.log" 2>/dev/null || echo 0)" -ge "$BYTES" ]; do
        [ $SECONDS -lt $deadline ] || { echo "upkeep captured only $(stat -c %s "$WORK/log/w.log" 2>/dev/null) bytes" >&2; exit 1; }
        sleep 0.001
    done
}

upkeep_mode() { # $1: pty|pipe → "MiB/s cpu-s-per-GiB"
    rm -rf "$WORK/conf" "$WORK/log"; mkdir -p "$WORK/conf"
    # The job writes what `writer` writes (the daemon gives jobs a clean
    # environment, so the shell function is spelled out).
    printf 'task\nlog %s\nlog size unlimited\nlog rotate never\nexec sh -c "yes %s | head -c %s"\n' "$1" "$LINE" "$BYTES" > "$WORK/conf/w.conf"
    "$UPKEEP" daemon --conf-dir "$WORK/conf" --log-dir "$WORK/log" --socket "$WORK/sock" 2>/dev/null &
    echo $! > "$WORK/daemon.pid"
    until [ -S "$WORK/sock" ]; do sleep 0.01; done
    local c0 c1 t
    c0=$(cpu "$(cat "$WORK/daemon.pid")")
    t=$(best upkeep_run)
    c1=$(cpu "$(cat "$WORK/daemon.pid")")
    kill "$(cat "$WORK/daemon.pid")"; wait "$(cat "$WORK/daemon.pid")" 2>/dev/null || true
    echo "$(mibs "$t") $(awk -v c="$((0))" -v a="$c0" -v b="$c1" -v m="$MIB" 'BEGIN { printf "%.2f", (b - a) / (3 * m / 1024) }')"
}

pipe_t=$(best pipe_limit); pty_t=$(best pty_limit)
pipe_lim=$(mibs "$pipe_t"); pty_lim=$(mibs "$pty_t")
read -r up_pipe cpu_pipe <<<"$(upkeep_mode pipe)"
read -r up_pty cpu_pty <<<"$(upkeep_mode pty)"
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f%%", 100 * a / b }'; }

echo "Log capture, ${MIB} MiB of 64-byte lines (best of 3), $(nproc) cores, $(uname -r)"
echo
echo "| mode | limit (MiB/s) | upkeep (MiB/s) | upkeep / limit | daemon CPU s per GiB |"
echo "|---|---|---|---|---|"
echo "| pipe (\`log pipe\`) vs \`writer \\| cat > file\` | $pipe_lim | $up_pipe | $(pct "$up_pipe" "$pipe_lim") | $cpu_pipe |"
echo "| pty (default) vs minimal pty copier | $pty_lim | $up_pty | $(pct "$up_pty" "$pty_lim") | $cpu_pty |"
