"""`cramatte obs add|set|remove`: add and tune the Portrait Matte filter on a running OBS through
obs-websocket. The password comes from OBS_WEBSOCKET_PASSWORD or a prompt; it is never printed or
logged (obsws-python logs its arguments at INFO, so its logger is kept at WARNING)."""
import getpass
import logging
import os
import sys

from cramatte.ranges import check_ranges

FILTER_KIND = "cramatte_portrait_matte"


def parse_value(text: str):
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_settings(pairs) -> dict:
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"setting {pair!r} is not KEY=VALUE")
        out[key] = parse_value(value)
    return out


def password() -> str:
    if "OBS_WEBSOCKET_PASSWORD" in os.environ:
        return os.environ["OBS_WEBSOCKET_PASSWORD"]
    return getpass.getpass("obs-websocket password (empty if none): ") if sys.stdin.isatty() else ""


def connect(args, client_factory):
    """A client for OBS, or one OSError saying what is wrong: no OBS, wrong port, wrong password."""
    check_ranges(args, {"port": (1, 65535, True)})
    where = f"obs-websocket at {args.host}:{args.port}"
    try:
        return client_factory(host=args.host, port=args.port, password=password(), timeout=10)
    except ConnectionRefusedError:
        raise OSError(f"cannot reach {where}: connection refused (is OBS running, with Tools > WebSocket "
                      "Server Settings > Enable WebSocket server on, at this port?)") from None
    except (TimeoutError, OSError) as e:
        raise OSError(f"cannot reach {where}: {e.strerror or type(e).__name__}") from None
    except Exception as e:  # obsws-python's own errors, and the socket closed by a refused password
        text = str(e)
        if "no password provided" in text:
            raise OSError(f"{where} wants a password: set OBS_WEBSOCKET_PASSWORD (or type it when asked)") from None
        if "failed to identify" in text or "closed" in text.lower() or "Authentication" in text:
            raise OSError(f"{where} refused the password (OBS_WEBSOCKET_PASSWORD); see Tools > WebSocket "
                          "Server Settings > Show Connect Info") from None
        raise OSError(f"cannot talk to {where}: {type(e).__name__}: {text}") from None


def matte_filters(client, source: str) -> list:
    """Names of the Portrait Matte filters on `source`, however they were added (found by their kind)."""
    try:
        filters = client.get_source_filter_list(source).filters
    except Exception as e:
        if getattr(e, "code", None) == 600:
            raise ValueError(f"OBS has no source named '{source}'") from None
        raise
    return [f["filterName"] for f in filters if f.get("filterKind") == FILTER_KIND]


def run(args, client_factory=None) -> int:
    if not getattr(args, "verbose", False):  # obsws-python logs a traceback of its own for each failure
        logging.getLogger("obsws_python").setLevel(logging.CRITICAL)
    else:
        logging.getLogger("obsws_python").setLevel(logging.WARNING)  # never INFO: it logs the password
    if client_factory is None:
        try:
            import obsws_python
        except ImportError:
            raise ImportError("cramatte obs needs obsws-python (cramatte's 'obs' extra): pip install obsws-python") from None
        client_factory = obsws_python.ReqClient
    settings = parse_settings(args.set)
    client = connect(args, client_factory)
    existing = matte_filters(client, args.source)
    if args.action == "add" and not existing:
        client.create_source_filter(args.source, args.name, FILTER_KIND, settings)
        print(f"added: filter '{args.name}' on source '{args.source}'")
        return 0
    if not existing:
        raise ValueError(f"source '{args.source}' has no Portrait Matte filter (add one with: cramatte obs add "
                         f"--source '{args.source}')")
    name = args.name if args.name in existing else existing[0]
    if args.action == "remove":
        client.remove_source_filter(args.source, name)
    else:  # "set", or "add" on a source that has one already: one matte filter per source, updated
        client.set_source_filter_settings(args.source, name, settings, overlay=True)
    done = {"remove": "removed", "set": "updated"}.get(args.action, "updated the existing")
    print(f"{done}: filter '{name}' on source '{args.source}'")
    return 0


def add_parser(sub) -> None:
    """Registered as the `obs` subcommand of the `cramatte` command (entry point cramatte.commands)."""
    p = sub.add_parser("obs", help="add, tune or remove the Portrait Matte filter in a running OBS")
    p.add_argument("action", choices=["add", "set", "remove"])
    p.add_argument("--source", required=True, help="the OBS source (e.g. your camera)")
    p.add_argument("--name", default="Portrait Matte", help="the filter's name on that source")
    p.add_argument("--set", nargs="*", metavar="KEY=VALUE",
                   help="filter settings, e.g. preset=fast background=blur blur=20 show_matte=false")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=4455)
    p.set_defaults(func=run)
