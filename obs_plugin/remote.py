"""`cramatte obs add|set|remove`: add and tune the Portrait Matte filter on a running OBS through
obs-websocket. The password comes from OBS_WEBSOCKET_PASSWORD or a prompt; it is never printed or
logged (obsws-python logs its arguments at INFO, so its logger is kept at WARNING)."""
import getpass
import logging
import os
import sys

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


def run(args, client_factory=None) -> int:
    logging.getLogger("obsws_python").setLevel(logging.WARNING)
    if client_factory is None:
        try:
            import obsws_python
        except ImportError:
            raise ImportError("cramatte obs needs obsws-python: pip install obsws-python") from None
        client_factory = obsws_python.ReqClient
    settings = parse_settings(args.set)
    try:
        client = client_factory(host=args.host, port=args.port, password=password(), timeout=10)
    except Exception as e:
        raise OSError(f"cannot reach obs-websocket at {args.host}:{args.port} ({type(e).__name__})") from None
    if args.action == "add":
        client.create_source_filter(args.source, args.name, FILTER_KIND, settings)
    elif args.action == "set":
        client.set_source_filter_settings(args.source, args.name, settings, overlay=True)
    else:
        client.remove_source_filter(args.source, args.name)
    print(f"{args.action}: filter '{args.name}' on source '{args.source}'")
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
