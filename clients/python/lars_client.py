"""Python client of `lars agent`, the Lars-on-NATS sidecar. Standard library only.

Two clients, one per API of the sidecar:

* ``HttpClient`` -- the HTTP/JSON API (default http://127.0.0.1:8900), one
  keep-alive connection::

      c = HttpClient()
      pick = c.get_host(1, 1)                 # Pick(ok=True, ip='10.0.0.1', port=8080, ...)
      if pick.ok:
          ... call pick.ip:pick.port ...
          c.report(1, 1, pick.ip, pick.port, retcode=0, latency_ms=12.5)
      for state in c.watch_route(1, 1):        # the route now, then every change
          print(state["version"], [h["ip"] for h in state["hosts"]])

* ``UdpClient`` -- Lars' UDP protocol (ports 8888-8890), as the original
  C++ client speaks it, with a timeout the original lacks::

      u = UdpClient()
      pick = u.get_host(1, 1)                 # Pick(ok=True, ..., retcode=0)
      u.report(1, 1, pick.ip, pick.port, retcode=0, latency_us=12500)

Retcodes are Lars': 0 success; in replies 1 RET_OVERLOAD (no host may be
picked now), 2 RET_SYSTEM_ERROR, 3 RET_NOEXIST (unknown route: the sidecar
starts following it, ask again).
"""

from __future__ import annotations

import http.client
import json
import socket
import struct
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

__all__ = [
    "Pick",
    "LarsError",
    "HttpClient",
    "UdpClient",
    "RET_SUCC",
    "RET_OVERLOAD",
    "RET_SYSTEM_ERROR",
    "RET_NOEXIST",
    "ip_to_int",
    "int_to_ip",
    "encode_frame",
    "decode_frame",
]

RET_SUCC = 0
RET_OVERLOAD = 1
RET_SYSTEM_ERROR = 2
RET_NOEXIST = 3

MSG_GET_HOST_REQUEST = 4
MSG_GET_HOST_RESPONSE = 5
MSG_REPORT_REQUEST = 6
MSG_GET_ROUTE_REQUEST = 7
MSG_GET_ROUTE_RESPONSE = 8


class LarsError(Exception):
    """An error answer of the sidecar (``code`` as in its JSON: BAD_REQUEST, ...) or a transport failure."""

    def __init__(self, code: str, message: str, status: int = 0) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Pick:
    """A host to call (``ok``), or why there is none (``code``: NO_ROUTE, NO_HOST)."""

    ok: bool
    ip: str = ""
    port: int = 0
    code: str = ""
    message: str = ""
    retcode: int = RET_SUCC


# --------------------------------------------------------------------------- HTTP


class HttpClient:
    """The sidecar's HTTP/JSON API over one keep-alive connection (not thread-safe: one per thread)."""

    def __init__(self, base_url: str = "http://127.0.0.1:8900", timeout: float = 5.0) -> None:
        u = urllib.parse.urlsplit(base_url)
        if u.scheme != "http" or not u.hostname:
            raise ValueError(f"base_url must be http://host:port, got {base_url!r}")
        self.host = u.hostname
        self.port = u.port or 80
        self.timeout = timeout
        self._conn: Optional[http.client.HTTPConnection] = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self._conn

    def _request(self, method: str, path: str, body: Any = None) -> Tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode("utf-8")
        headers = {"content-type": "application/json"} if data is not None else {}
        for attempt in (0, 1):
            conn = self._connection()
            try:
                conn.request(method, path, body=data, headers=headers)
                res = conn.getresponse()
                raw = res.read()
                if res.getheader("connection", "").lower() == "close":
                    self.close()
                return res.status, json.loads(raw) if raw else None
            except (ConnectionError, http.client.RemoteDisconnected, http.client.CannotSendRequest, http.client.BadStatusLine) as e:
                # a keep-alive connection the server closed meanwhile: one retry on a new one
                self.close()
                if attempt == 1:
                    raise LarsError("UNREACHABLE", f"{method} {path}: {e}") from e
            except OSError as e:
                self.close()
                raise LarsError("UNREACHABLE", f"{method} {path}: {e}") from e
        raise AssertionError("unreachable")

    @staticmethod
    def _raise(status: int, body: Any) -> None:
        if isinstance(body, dict):
            raise LarsError(str(body.get("code", "HTTP_%d" % status)), str(body.get("message", "")), status)
        raise LarsError("HTTP_%d" % status, repr(body), status)

    @staticmethod
    def _route_query(modid: int, cmdid: int, **extra: Optional[str]) -> str:
        q = {"modid": str(modid), "cmdid": str(cmdid)}
        q.update({k: v for k, v in extra.items() if v is not None})
        return urllib.parse.urlencode(q)

    def get_host(self, modid: int, cmdid: int, key: Optional[str] = None) -> Pick:
        """A host for a call. On a route's first use the sidecar waits briefly for its state."""
        status, body = self._request("GET", "/v1/host?" + self._route_query(modid, cmdid, key=key))
        if status == 200:
            return Pick(True, body["ip"], int(body["port"]))
        if status in (404, 503) and isinstance(body, dict) and body.get("code") in ("NO_ROUTE", "NO_HOST"):
            return Pick(False, code=body["code"], message=body.get("message", ""), retcode=RET_NOEXIST if body["code"] == "NO_ROUTE" else RET_OVERLOAD)
        self._raise(status, body)
        raise AssertionError("unreachable")

    def get_route(self, modid: int, cmdid: int) -> Optional[Dict[str, Any]]:
        """The effective route (RouteState as JSON), or None when it is not registered."""
        status, body = self._request("GET", "/v1/route?" + self._route_query(modid, cmdid))
        if status == 200:
            return body
        if status == 404 and isinstance(body, dict) and body.get("code") == "NO_ROUTE":
            return None
        self._raise(status, body)
        raise AssertionError("unreachable")

    def report(self, modid: int, cmdid: int, ip: str, port: int, retcode: int, latency_ms: Optional[float] = None,
               utilization: Optional[float] = None) -> None:
        """One call result: retcode 0 is success, anything else an error. ``utilization`` (0..1, optional) is the
        busy share the host answered with; the route node weighs hosts by it."""
        r: Dict[str, Any] = {"modid": modid, "cmdid": cmdid, "ip": ip, "port": port, "retcode": retcode}
        if latency_ms is not None:
            r["latency_ms"] = latency_ms
        if utilization is not None:
            r["utilization"] = utilization
        status, body = self._request("POST", "/v1/report", r)
        if status != 200:
            self._raise(status, body)

    def report_batch(self, reports: Sequence[Dict[str, Any]]) -> int:
        """Several results at once (dicts with modid, cmdid, ip, port, retcode[, latency_ms][, utilization]); all or none are taken."""
        status, body = self._request("POST", "/v1/report", {"reports": list(reports)})
        if status != 200:
            self._raise(status, body)
        return int(body["accepted"])

    def register(self, modid: int, cmdid: int, ip: str, port: int, weight: Optional[int] = None,
                 zone: Optional[str] = None, ttl_ms: Optional[int] = None, instance: Optional[str] = None) -> Dict[str, Any]:
        """One heartbeat of a self-registered host (call it every ``heartbeat_ms`` of the answer, default 2 s).
        The host leaves its route when no heartbeat came for ``ttl_ms`` (default 10 s)."""
        r: Dict[str, Any] = {"modid": modid, "cmdid": cmdid, "ip": ip, "port": port}
        for k, v in (("weight", weight), ("zone", zone), ("ttl_ms", ttl_ms), ("instance", instance)):
            if v is not None:
                r[k] = v
        status, body = self._request("POST", "/v1/register", r)
        if status != 200:
            self._raise(status, body)
        return body

    def deregister(self, modid: int, cmdid: int, ip: str, port: int, drain_ms: Optional[int] = None) -> None:
        """Leaves the route gracefully: draining first; returns once the host is out (after drain_ms, default 2 s).
        Keep serving until it returns."""
        r: Dict[str, Any] = {"modid": modid, "cmdid": cmdid, "ip": ip, "port": port}
        if drain_ms is not None:
            r["drain_ms"] = drain_ms
        status, body = self._request("POST", "/v1/deregister", r)
        if status != 200:
            self._raise(status, body)

    def health(self) -> Dict[str, Any]:
        status, body = self._request("GET", "/healthz")
        if status != 200:
            self._raise(status, body)
        return body

    def watch_route(self, modid: int, cmdid: int, timeout: Optional[float] = None) -> Iterator[Dict[str, Any]]:
        """Yields the route's state now (once known), then every new state, from the sidecar's event stream.

        Uses a connection of its own; ``timeout`` bounds the wait for each event (heartbeats count).
        """
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request("GET", "/v1/routes/stream?" + self._route_query(modid, cmdid))
            res = conn.getresponse()
            if res.status != 200:
                self._raise(res.status, json.loads(res.read() or b"null"))
            event, data = "message", []
            while True:
                line = res.readline()
                if not line:
                    return
                line = line.decode("utf-8").rstrip("\r\n")
                if line == "":
                    if event == "route" and data:
                        yield json.loads("\n".join(data))
                    event, data = "message", []
                elif line.startswith(":"):
                    continue
                elif line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip(" "))
        finally:
            conn.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> "HttpClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- Lars' UDP protocol


def ip_to_int(ip: str) -> int:
    """a.b.c.d -> int32 in Lars' byte order (127.0.0.1 = 2130706433; 128.0.0.0 and up negative)."""
    (n,) = struct.unpack("!i", socket.inet_aton(ip))
    return n


def int_to_ip(n: int) -> str:
    return socket.inet_ntoa(struct.pack("!I", n & 0xFFFFFFFF))


def _varint(v: int) -> bytes:
    v &= 0xFFFFFFFFFFFFFFFF  # int32 negatives travel as 10-byte varints
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def _vfield(no: int, v: int) -> bytes:
    return b"" if v == 0 else _varint(no << 3) + _varint(v)


def _lfield(no: int, b: bytes) -> bytes:
    return _varint((no << 3) | 2) + _varint(len(b)) + b


def _fields(buf: bytes) -> Dict[int, List[Any]]:
    out: Dict[int, List[Any]] = {}
    i = 0

    def read() -> int:
        nonlocal i
        v, shift = 0, 0
        while True:
            if i >= len(buf):
                raise ValueError("truncated varint")
            b = buf[i]
            i += 1
            v |= (b & 0x7F) << shift
            if b < 0x80:
                return v
            shift += 7

    while i < len(buf):
        tag = read()
        wt = tag & 7
        if wt == 0:
            val: Any = read()
        elif wt == 2:
            n = read()
            val = buf[i : i + n]
            i += n
        elif wt == 5:
            val = buf[i : i + 4]
            i += 4
        elif wt == 1:
            val = buf[i : i + 8]
            i += 8
        else:
            raise ValueError(f"wire type {wt}")
        out.setdefault(tag >> 3, []).append(val)
    return out


def _int32(f: Dict[int, List[Any]], no: int) -> int:
    v = f.get(no, [0])[0] & 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


def encode_frame(msgid: int, body: bytes) -> bytes:
    """The 8-byte header (msgid, msglen: int32 little-endian) then the body."""
    return struct.pack("<ii", msgid, len(body)) + body


def decode_frame(d: bytes) -> Tuple[int, bytes]:
    if len(d) < 8:
        raise ValueError("datagram shorter than the header")
    msgid, n = struct.unpack_from("<ii", d)
    if n != len(d) - 8:
        raise ValueError(f"msglen {n} does not match the datagram")
    return msgid, d[8:]


def encode_get_host(seq: int, modid: int, cmdid: int) -> bytes:
    return encode_frame(MSG_GET_HOST_REQUEST, _vfield(1, seq) + _vfield(2, modid) + _vfield(3, cmdid))


def encode_report(modid: int, cmdid: int, ip: str, port: int, retcode: int, latency_us: int = 0) -> bytes:
    host = _vfield(1, ip_to_int(ip)) + _vfield(2, port)
    return encode_frame(MSG_REPORT_REQUEST, _vfield(1, modid) + _vfield(2, cmdid) + _lfield(3, host) + _vfield(4, retcode) + _vfield(15, latency_us))


def encode_get_route(modid: int, cmdid: int) -> bytes:
    return encode_frame(MSG_GET_ROUTE_REQUEST, _vfield(1, modid) + _vfield(2, cmdid))


class UdpClient:
    """Lars' UDP protocol, as the original client speaks it: route (modid, cmdid) on port ports[(modid + cmdid) % 3]."""

    def __init__(self, host: str = "127.0.0.1", ports: Sequence[int] = (8888, 8889, 8890), timeout: float = 1.0, retries: int = 2) -> None:
        if not ports:
            raise ValueError("ports must not be empty")
        self.host = host
        self.ports = list(ports)
        self.timeout = timeout
        self.retries = retries
        self._seq = 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.settimeout(timeout)

    def port_of(self, modid: int, cmdid: int) -> int:
        return self.ports[(modid + cmdid) % len(self.ports)]

    def _ask(self, datagram: bytes, port: int, want_msgid: int, match: Any) -> Dict[int, List[Any]]:
        for _ in range(self.retries + 1):
            self._sock.sendto(datagram, (self.host, port))
            deadline = time.monotonic() + self.timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._sock.settimeout(left)
                try:
                    d, _addr = self._sock.recvfrom(65535)
                except socket.timeout:
                    break
                try:
                    msgid, body = decode_frame(d)
                    f = _fields(body)
                except ValueError:
                    continue
                if msgid == want_msgid and match(f):
                    return f
        raise LarsError("TIMEOUT", f"no reply from {self.host}:{port} after {self.retries + 1} tries")

    def get_host(self, modid: int, cmdid: int) -> Pick:
        """A host (retcode 0), or RET_OVERLOAD / RET_NOEXIST (ask again: the sidecar is loading the route)."""
        seq = self._seq
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        f = self._ask(
            encode_get_host(seq, modid, cmdid),
            self.port_of(modid, cmdid),
            MSG_GET_HOST_RESPONSE,
            lambda f: f.get(1, [0])[0] == seq and _int32(f, 2) == modid and _int32(f, 3) == cmdid,
        )
        retcode = _int32(f, 4)
        if retcode != RET_SUCC or 5 not in f:
            code = {RET_NOEXIST: "NO_ROUTE", RET_OVERLOAD: "NO_HOST"}.get(retcode, "SYSTEM_ERROR")
            return Pick(False, code=code, retcode=retcode)
        h = _fields(f[5][0])
        return Pick(True, int_to_ip(_int32(h, 1)), _int32(h, 2))

    def get_route(self, modid: int, cmdid: int) -> List[Tuple[str, int]]:
        f = self._ask(encode_get_route(modid, cmdid), self.port_of(modid, cmdid), MSG_GET_ROUTE_RESPONSE, lambda f: _int32(f, 1) == modid and _int32(f, 2) == cmdid)
        hosts = []
        for raw in f.get(3, []):
            h = _fields(raw)
            hosts.append((int_to_ip(_int32(h, 1)), _int32(h, 2)))
        return hosts

    def report(self, modid: int, cmdid: int, ip: str, port: int, retcode: int, latency_us: int = 0) -> None:
        """One call result (no reply). latency_us is this sidecar's extension; Lars' agent ignores it."""
        self._sock.sendto(encode_report(modid, cmdid, ip, port, retcode, latency_us), (self.host, self.port_of(modid, cmdid)))

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> "UdpClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
