"""Close OBS's main window as a window manager does (a WM_DELETE_WINDOW message), so OBS quits from its
event loop, as it does for a user who closes it. (OBS 29 handles SIGINT by closing its window from
inside the signal handler, re-entering Qt wherever the signal lands: now and then a crash or a hang at
exit, in Qt's code, whatever the scripts.)
usage: quit_obs.py PID  (DISPLAY set); exit 1 when no window of PID is there to close."""
import sys

from Xlib import X, Xatom, display, protocol

pid = int(sys.argv[1])
d = display.Display()
atoms = {name: d.intern_atom(name) for name in ("_NET_WM_PID", "WM_PROTOCOLS", "WM_DELETE_WINDOW")}
for window in d.screen().root.query_tree().children:
    owner = window.get_full_property(atoms["_NET_WM_PID"], Xatom.CARDINAL)
    name = window.get_wm_name() or ""
    if owner and owner.value[0] == pid and window.get_attributes().map_state == X.IsViewable and name.startswith("OBS"):
        message = protocol.event.ClientMessage(window=window, client_type=atoms["WM_PROTOCOLS"],
                                               data=(32, [atoms["WM_DELETE_WINDOW"], X.CurrentTime, 0, 0, 0]))
        window.send_event(message, event_mask=X.NoEventMask)
        d.flush()
        print(f"closing {name!r}")
        sys.exit(0)
sys.exit(f"no window of OBS (process {pid}) to close")
