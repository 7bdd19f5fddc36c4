#!/usr/bin/env bash
# Runs inside `unshare -n`: loopback only. Starts Xvfb and OBS with the prepared HOME, then the client.
# usage: start_obs.sh HOME_DIR CLIENT_PYTHON CLIENT_SCRIPT RESULTS_DIR
set -u
export HOME="$1"
ip link set lo up
Xvfb :99 -screen 0 1280x720x24 +extension GLX -nolisten tcp >"$4/xvfb.log" 2>&1 &
XVFB=$!
sleep 1
DISPLAY=:99 LIBGL_ALWAYS_SOFTWARE=1 obs --disable-shutdown-check --multi >"$4/obs.log" 2>&1 &
OBS=$!
"$2" "$3" "$4"
STATUS=$?
# Quit OBS as a desktop session would, with the filter's worker still running.
kill -INT "$OBS" 2>/dev/null
for _ in $(seq 75); do kill -0 "$OBS" 2>/dev/null || break; sleep 0.2; done
if kill -0 "$OBS" 2>/dev/null; then
    echo "killed" >"$4/obs_exit"
    # Where it hangs, for the test's report: every thread's stack (gdb where installed).
    command -v gdb >/dev/null && timeout 60 gdb -p "$OBS" -batch -ex "thread apply all bt" >"$4/obs_hang.txt" 2>&1
    kill -KILL "$OBS"
else
    wait "$OBS"; echo "exited $?" >"$4/obs_exit"
fi
kill "$XVFB" 2>/dev/null
exit $STATUS
