"""The messages between `cramatte.live` in the host and its child, `cramatte.live_worker`: a header (two
lengths), a JSON part, then raw array bytes. Only the standard library and numpy: hosts import it."""
import json
import struct

import numpy as np

HEADER = struct.Struct("<II")  # length of the JSON part, length of the binary part


def send(stream, meta: dict, *arrays) -> None:
    """One message: header, JSON, then the arrays' bytes back to back (their shapes go in `meta`)."""
    body = json.dumps(meta).encode()
    views = [memoryview(np.ascontiguousarray(a)).cast("B") for a in arrays]
    stream.write(HEADER.pack(len(body), sum(v.nbytes for v in views)) + body)
    for view in views:
        stream.write(view)
    stream.flush()


def _read(stream, n: int):
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = stream.readinto(view[got:])
        if not k:
            return None
        got += k
    return buf


def receive(stream):
    """(meta, payload bytearray) of the next message, or None at end of input."""
    head = _read(stream, HEADER.size)
    if head is None:
        return None
    size, payload = HEADER.unpack(head)
    body, data = _read(stream, size), _read(stream, payload)
    if body is None or data is None:
        return None
    return json.loads(body), data
