#!/usr/bin/env bash
# Runs inside `unshare -n`: loopback only. Starts Xvfb and OBS with the prepared HOME, then the client.
# usage: start_obs.sh HOME_DIR CLIENT_PYTHON CLIENT_SCRIPT RESULTS_DIR
set -u
export HOME="$1"
ip link set lo up
Xvfb :99 -screen 0 1280x720x24 +extension GLX -nolisten tcp >"$4/xvfb.log" 2>&1 &
XVFB=$!
sleep 1
# A crash leaves a core in the working directory (core_pattern "core"), read below for the report.
ulimit -c unlimited 2>/dev/null
DISPLAY=:99 LIBGL_ALWAYS_SOFTWARE=1 obs --disable-shutdown-check --multi >"$4/obs.log" 2>&1 &
OBS=$!
"$2" "$3" "$4"
STATUS=$?
# Quit OBS as a user does, closing its window, with the filter's worker still running.
if ! DISPLAY=:99 "$2" "$(dirname "$0")/quit_obs.py" "$OBS" >"$4/obs_quit.txt" 2>&1; then
    echo "not closed: $(tail -n 1 "$4/obs_quit.txt")" >"$4/obs_exit"
    kill -KILL "$OBS"
fi
for _ in $(seq 75); do kill -0 "$OBS" 2>/dev/null || break; sleep 0.2; done
if kill -0 "$OBS" 2>/dev/null; then
    echo "killed" >"$4/obs_exit"
    # Where it hangs, for the test's report: every thread's stack (gdb where installed).
    command -v gdb >/dev/null && timeout 60 gdb -p "$OBS" -batch -ex "thread apply all bt" >"$4/obs_hang.txt" 2>&1
    kill -KILL "$OBS"
else
    wait "$OBS"; code=$?; [ -f "$4/obs_exit" ] || echo "exited $code" >"$4/obs_exit"
fi
# A crash (exit 139 and the like): every thread's stack from its core, for the test's report.
for core in core core.*; do
    [ -f "$core" ] && command -v gdb >/dev/null && timeout 120 gdb -batch -ex "thread apply all bt" "$(command -v obs)" "$core" >"$4/obs_crash.txt" 2>&1
    rm -f "$core"  # hundreds of MB
done
kill "$XVFB" 2>/dev/null
exit $STATUS
