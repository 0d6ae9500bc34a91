"""Tests of lars_client.py.

The wire tests need nothing. The sidecar tests need a running `lars agent`
on a cluster with a registered route, named by the environment:

  LARS_HTTP_URL     http://127.0.0.1:<port> of the sidecar's HTTP API
  LARS_UDP_PORTS    its UDP ports, comma separated
  LARS_TEST_ROUTE   modid,cmdid of a registered route
  LARS_TEST_HOSTS   that route's hosts, ip:port comma separated
  LARS_TEST_EJECT   modid,cmdid of a second registered route (same hosts) the tests may eject a host of

test/integration/sidecar-clients.test.ts sets all of this up and runs
`python3 -m unittest -v test_lars_client` here.
"""

import os
import time
import unittest

from lars_client import (
    RET_NOEXIST,
    HttpClient,
    LarsError,
    UdpClient,
    decode_frame,
    encode_frame,
    encode_get_host,
    encode_get_route,
    encode_report,
    int_to_ip,
    ip_to_int,
)

ENV = os.environ
HAS_SIDECAR = all(k in ENV for k in ("LARS_HTTP_URL", "LARS_UDP_PORTS", "LARS_TEST_ROUTE", "LARS_TEST_HOSTS", "LARS_TEST_EJECT"))


def wait_for(check, what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        v = check()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class WireTest(unittest.TestCase):
    def test_protocol_vectors(self):
        self.assertEqual(encode_get_host(7, 1, 1).hex(), "04000000060000000807" "10011801")
        self.assertEqual(encode_report(1, 1, "127.0.0.1", 9001, 0).hex(), "060000000f000000" "08011001" "1a0908818080f80710a946")
        self.assertEqual(encode_get_route(1, 1).hex(), "0700000004000000" "08011001")
        msgid, body = decode_frame(bytes.fromhex("05000000110000000807100118012a0908838080f80710a946"))
        self.assertEqual((msgid, body.hex()), (5, "080710011801" "2a0908838080f80710a946"))

    def test_addresses(self):
        self.assertEqual(ip_to_int("127.0.0.1"), 2130706433)
        self.assertEqual(ip_to_int("128.0.0.0"), -2147483648)
        self.assertEqual(int_to_ip(-1), "255.255.255.255")
        self.assertEqual(int_to_ip(ip_to_int("200.1.2.3")), "200.1.2.3")

    def test_bad_frames(self):
        with self.assertRaises(ValueError):
            decode_frame(b"\x05\x00")
        with self.assertRaises(ValueError):
            decode_frame(encode_frame(5, b"\x08\x01")[:-1])


@unittest.skipUnless(HAS_SIDECAR, "needs a running lars agent (see the module docstring)")
class SidecarTest(unittest.TestCase):
    def setUp(self):
        self.http = HttpClient(ENV["LARS_HTTP_URL"])
        self.udp = UdpClient(ports=[int(p) for p in ENV["LARS_UDP_PORTS"].split(",")], timeout=1.0)
        self.modid, self.cmdid = (int(x) for x in ENV["LARS_TEST_ROUTE"].split(","))
        self.eject_route = tuple(int(x) for x in ENV["LARS_TEST_EJECT"].split(","))
        self.hosts = sorted(ENV["LARS_TEST_HOSTS"].split(","))

    def tearDown(self):
        self.http.close()
        self.udp.close()

    def test_http_host_route_report(self):
        seen = set()
        for _ in range(30):
            p = self.http.get_host(self.modid, self.cmdid)
            self.assertTrue(p.ok, p)
            seen.add(f"{p.ip}:{p.port}")
            self.http.report(self.modid, self.cmdid, p.ip, p.port, 0, latency_ms=1.5, utilization=0.5)
        self.assertEqual(sorted(seen), self.hosts)
        route = self.http.get_route(self.modid, self.cmdid)
        self.assertEqual(sorted(f"{h['ip']}:{h['port']}" for h in route["hosts"]), self.hosts)
        ip, port = self.hosts[0].split(":")
        n = self.http.report_batch([{"modid": self.modid, "cmdid": self.cmdid, "ip": ip, "port": int(port), "retcode": 0}] * 5)
        self.assertEqual(n, 5)
        self.assertTrue(self.http.health()["ok"])

    def test_http_errors(self):
        self.assertEqual(self.http.get_host(987654, 1).code, "NO_ROUTE")
        self.assertIsNone(self.http.get_route(987654, 1))
        with self.assertRaises(LarsError) as e:
            self.http.report(self.modid, self.cmdid, "not-an-ip", 80, 0)
        self.assertEqual((e.exception.code, e.exception.status), ("BAD_REQUEST", 400))
        self.assertIn("report.ip", e.exception.message)
        # the connection is still usable after an error
        self.assertTrue(self.http.get_host(self.modid, self.cmdid).ok)

    def test_self_registration(self):
        m, c = 4343, 7
        with self.assertRaises(LarsError) as e:
            self.http.register(m, c, "127.0.0.1", 0)
        self.assertEqual(e.exception.status, 400)
        ok = self.http.register(m, c, "127.0.0.1", 18080, weight=50, ttl_ms=60000, instance="py-test")
        self.assertEqual((ok["ttl_ms"], ok["heartbeat_ms"]), (60000, 12000))
        wait_for(lambda: (lambda p: p if p.ok and p.port == 18080 else None)(self.http.get_host(m, c)), "the registered host picked")
        self.http.deregister(m, c, "127.0.0.1", 18080, drain_ms=100)

        def out():
            # its only host gone, the route itself is gone (no admin entry keeps it)
            r = self.http.get_route(m, c)
            return r is None or all(h["pick_weight"] == 0 for h in r["hosts"])
        wait_for(out, "the deregistered host out of the picks")
        self.assertFalse(self.http.get_host(m, c).ok)

    def test_udp_host_route_report(self):
        p = wait_for(lambda: (lambda r: r if r.ok else None)(self.udp.get_host(self.modid, self.cmdid)), "a host over UDP")
        self.assertIn(f"{p.ip}:{p.port}", self.hosts)
        self.assertEqual(sorted(f"{ip}:{port}" for ip, port in self.udp.get_route(self.modid, self.cmdid)), self.hosts)
        self.udp.report(self.modid, self.cmdid, p.ip, p.port, 0, latency_us=1500)
        unknown = self.udp.get_host(987655, 2)
        self.assertEqual((unknown.ok, unknown.retcode), (False, RET_NOEXIST))

    def test_failing_host_is_ejected(self):
        m, c = self.eject_route
        bad_ip, bad_port = self.hosts[1].split(":")
        wait_for(lambda: self.udp.get_host(m, c).ok, "route over UDP")
        for _ in range(20):
            self.udp.report(m, c, bad_ip, int(bad_port), 1, latency_us=30000)

        def gone():
            picks = {f"{p.ip}:{p.port}" for p in (self.http.get_host(m, c) for _ in range(12))}
            return self.hosts[1] not in picks

        wait_for(gone, "the failing host to leave the picks")
        states = self.http.watch_route(m, c, timeout=5.0)
        first = next(states)
        self.assertEqual([h["state"] for h in first["hosts"] if f"{h['ip']}:{h['port']}" == self.hosts[1]], ["overloaded"])
        states.close()


if __name__ == "__main__":
    unittest.main()
