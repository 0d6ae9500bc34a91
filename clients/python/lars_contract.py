"""Reading the contract's msgpack messages (schemas/README.md), standard library only.

decode_msgpack(data) reads one msgpack value as the reference reader does
(numbers as int or float, maps with string keys; the never-used byte 0xc1,
extension types, truncated values and trailing bytes are malformed).
check_route_state(value) and check_report_batch(value) apply the contract's
checks in the reference reader's order and return None for a valid message
or the rejection kind ("wrong_type", "out_of_range", "oversize",
"bad_version"). judge(kind, data) does both. The conformance vectors
(schemas/conformance/wire.json) hold these functions to the TypeScript reader
(test_conformance.py).
"""

import math
import re
import struct
from typing import Any, Callable, Dict, List, Optional, Tuple

MALFORMED = "malformed"
WRONG_TYPE = "wrong_type"
OUT_OF_RANGE = "out_of_range"
OVERSIZE = "oversize"
BAD_VERSION = "bad_version"

_IPV4 = re.compile(r"^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$")
_MAX_SAFE = 9007199254740991
_MAX_TIME = 8.64e15


class Malformed(ValueError):
    pass


def decode_msgpack(data: bytes) -> Any:
    value, pos = _read(data, 0, 0)
    if pos != len(data):
        raise Malformed("trailing bytes after the msgpack value")
    return value


def _need(data: bytes, pos: int, n: int) -> bytes:
    if n < 0 or pos + n > len(data):
        raise Malformed("unexpected end of msgpack data")
    return data[pos:pos + n]


def _read(data: bytes, pos: int, depth: int) -> Tuple[Any, int]:
    if depth > 64:
        raise Malformed("nested too deep")
    t = _need(data, pos, 1)[0]
    pos += 1
    if t <= 0x7F:
        return t, pos
    if t >= 0xE0:
        return t - 0x100, pos
    if 0x80 <= t <= 0x8F:
        return _map(data, pos, t & 0x0F, depth)
    if 0x90 <= t <= 0x9F:
        return _array(data, pos, t & 0x0F, depth)
    if 0xA0 <= t <= 0xBF:
        return _str(data, pos, t & 0x1F)
    if t == 0xC0:
        return None, pos
    if t == 0xC2:
        return False, pos
    if t == 0xC3:
        return True, pos
    fixed = {0xCA: ">f", 0xCB: ">d", 0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q", 0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q"}
    if t in fixed:
        fmt = fixed[t]
        size = struct.calcsize(fmt)
        v = struct.unpack(fmt, _need(data, pos, size))[0]
        if t == 0xCF or t == 0xD3:
            v = float(v) if abs(v) > _MAX_SAFE else v
        return v, pos + size
    lengths = {0xC4: ">B", 0xC5: ">H", 0xC6: ">I", 0xD9: ">B", 0xDA: ">H", 0xDB: ">I", 0xDC: ">H", 0xDD: ">I", 0xDE: ">H", 0xDF: ">I"}
    if t in lengths:
        fmt = lengths[t]
        size = struct.calcsize(fmt)
        n = struct.unpack(fmt, _need(data, pos, size))[0]
        pos += size
        if t <= 0xC6:
            return bytes(_need(data, pos, n)), pos + n
        if t <= 0xDB:
            return _str(data, pos, n)
        if t <= 0xDD:
            return _array(data, pos, n, depth)
        return _map(data, pos, n, depth)
    raise Malformed("msgpack byte 0x%02x is no contract value" % t)


def _str(data: bytes, pos: int, n: int) -> Tuple[str, int]:
    return _need(data, pos, n).decode("utf-8", errors="replace"), pos + n


def _array(data: bytes, pos: int, n: int, depth: int) -> Tuple[List[Any], int]:
    if n > len(data) - pos:
        raise Malformed("array longer than the data")
    out = []
    for _ in range(n):
        v, pos = _read(data, pos, depth + 1)
        out.append(v)
    return out, pos


def _map(data: bytes, pos: int, n: int, depth: int) -> Tuple[Dict[str, Any], int]:
    if n > (len(data) - pos) // 2:
        raise Malformed("map longer than the data")
    out: Dict[str, Any] = {}
    for _ in range(n):
        k, pos = _read(data, pos, depth + 1)
        v, pos = _read(data, pos, depth + 1)
        out[k if isinstance(k, str) else str(k)] = v
    return out, pos


class _Reject(Exception):
    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _number(v: Any, lo: float, hi: float, own: Optional[str] = None) -> None:
    if not _is_num(v):
        raise _Reject(WRONG_TYPE)
    if isinstance(v, float) and not math.isfinite(v):
        raise _Reject(own or WRONG_TYPE)
    if v < lo or v > hi:
        raise _Reject(own or OUT_OF_RANGE)


def _integer(v: Any, lo: float, hi: float, own: Optional[str] = None) -> None:
    if not _is_num(v):
        raise _Reject(WRONG_TYPE)
    if isinstance(v, float) and (not math.isfinite(v) or not v.is_integer()):
        raise _Reject(own or WRONG_TYPE)
    if v < lo or v > hi:
        raise _Reject(own or OUT_OF_RANGE)


def _js_len(s: str) -> int:
    return sum(2 if ord(c) >= 0x10000 else 1 for c in s)


def _string(v: Any, lo: int, hi: int) -> None:
    if not isinstance(v, str):
        raise _Reject(WRONG_TYPE)
    if not lo <= _js_len(v) <= hi:
        raise _Reject(OUT_OF_RANGE)


def _one_of(v: Any, *choices: str) -> None:
    if not isinstance(v, str):
        raise _Reject(WRONG_TYPE)
    if v not in choices:
        raise _Reject(OUT_OF_RANGE)


def _ip(v: Any) -> None:
    _string(v, 0, 15)
    if not _IPV4.match(v):
        raise _Reject(OUT_OF_RANGE)


def _zone(m: Dict[str, Any]) -> None:
    if m.get("zone") is not None:
        _string(m["zone"], 0, 64)


def _required(m: Dict[str, Any], *keys: str) -> None:
    for k in keys:
        if k not in m:
            raise _Reject(WRONG_TYPE)


def _array_of(v: Any, lo: int, hi: int) -> List[Any]:
    if not isinstance(v, list):
        raise _Reject(WRONG_TYPE)
    if len(v) < lo:
        raise _Reject(OUT_OF_RANGE)
    if len(v) > hi:
        raise _Reject(OVERSIZE)
    return v


def _tuple(v: Any, n: int) -> List[Any]:
    if not isinstance(v, list) or len(v) != n:
        raise _Reject(WRONG_TYPE)
    return v


def _message(v: Any) -> Dict[str, Any]:
    if not isinstance(v, dict):
        raise _Reject(WRONG_TYPE)
    if not _is_num(v.get("v")) or v.get("v") != 1:
        raise _Reject(BAD_VERSION)
    return v


# the optional call policy fields of a route state and their upper bounds
_CALL_POLICY = (("retry_budget", 100), ("retry_floor", 1000000), ("hedge_delay_ms", 3600000), ("hedge_budget", 1), ("shed", 1))


def _route_state(v: Any) -> None:
    m = _message(v)
    _required(m, "v", "sender", "modid", "cmdid", "version", "ts", "profile", "panic", "removed", "probe_num", "hosts")
    _string(m["sender"], 1, 128)
    _integer(m["modid"], 0, 4294967295)
    _integer(m["cmdid"], 0, 4294967295)
    _integer(m["version"], 1, _MAX_SAFE)
    _number(m["ts"], 0, _MAX_TIME)
    _one_of(m["profile"], "default", "lars")
    for k in ("panic", "removed"):
        if not isinstance(m[k], bool):
            raise _Reject(WRONG_TYPE)
    _integer(m["probe_num"], 0, math.inf)
    if "strategy" in m:
        _one_of(m["strategy"], "lars", "swrr", "p2c", "p2c_ewma", "hash")
    for key, hi in _CALL_POLICY:
        if key in m:
            _number(m[key], 0, hi)
    for h in _array_of(m["hosts"], 0, 1024):
        if not isinstance(h, dict):
            raise _Reject(WRONG_TYPE)
        _required(h, "ip", "port", "weight", "state", "reason", "since", "pick_weight")
        _ip(h["ip"])
        _integer(h["port"], 1, 65535)
        _integer(h["weight"], 1, 10000)
        _zone(h)
        _one_of(h["state"], "healthy", "overloaded", "probing", "draining")
        _string(h["reason"], 0, 64)
        _number(h["since"], 0, _MAX_TIME)
        _number(h["pick_weight"], 0, 10000)
        if "trial_agent" in h:
            _string(h["trial_agent"], 1, 128)


def _report_batch(v: Any) -> None:
    m = _message(v)
    _required(m, "v", "sender", "modid", "cmdid", "ts", "hosts", "reports")
    _string(m["sender"], 1, 128)
    _integer(m["modid"], 0, 4294967295)
    _integer(m["cmdid"], 0, 4294967295)
    _number(m["ts"], 0, _MAX_TIME)
    _zone(m)
    hosts = _array_of(m["hosts"], 1, 1024)
    for h in hosts:
        t = _tuple(h, 2)
        _ip(t[0])
        _integer(t[1], 1, 65535)
    reports = _array_of(m["reports"], 1, 10000)
    for r in reports:
        t = _tuple(r, 4)
        _integer(t[0], 0, math.inf, OUT_OF_RANGE)
        _integer(t[1], -2147483648, 2147483647, OUT_OF_RANGE)
        _number(t[2], 0, 3600000, OUT_OF_RANGE)
        _integer(t[3], 0, 3600000, OUT_OF_RANGE)
    util = _array_of(m["utilization"], 0, 1024) if "utilization" in m else []
    for u in util:
        t = _tuple(u, 2)
        _integer(t[0], 0, math.inf, OUT_OF_RANGE)
        _number(t[1], 0, 1, OUT_OF_RANGE)
    marks = _array_of(m["attempts"], 0, 10000) if "attempts" in m else []
    for a in marks:
        t = _tuple(a, 3)
        _integer(t[0], 0, math.inf, OUT_OF_RANGE)
        _integer(t[1], 1, 255, OUT_OF_RANGE)
        # the kind is one of three literals: anything else, of any type, is out of range
        if not _is_num(t[2]) or t[2] not in (0, 1, 2):
            raise _Reject(OUT_OF_RANGE)
    # the rules beyond the schema: every host index points into hosts, every report index of a mark into reports
    if any(r[0] >= len(hosts) for r in reports) or any(u[0] >= len(hosts) for u in util) or any(a[0] >= len(reports) for a in marks):
        raise _Reject(OUT_OF_RANGE)


def _checker(check: Callable[[Any], None]) -> Callable[[Any], Optional[str]]:
    def run(value: Any) -> Optional[str]:
        try:
            check(value)
        except _Reject as r:
            return r.kind
        return None
    return run


check_route_state = _checker(_route_state)
check_report_batch = _checker(_report_batch)

READERS = {"route_state": check_route_state, "report_batch": check_report_batch}


def judge(kind: str, data: bytes) -> str:
    """'ok', or the kind a reader of message `kind` rejects `data` with."""
    try:
        value = decode_msgpack(data)
    except Malformed:
        return MALFORMED
    return READERS[kind](value) or "ok"
