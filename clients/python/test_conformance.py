"""The contract's decoding vectors (schemas/conformance/wire.json, generated
from the TypeScript reader) against lars_contract.py. Needs nothing but the
repository: python3 -m unittest test_conformance (run by
test/unit/python-conformance.test.ts)."""

import json
import os
import unittest

from lars_contract import READERS, judge

VECTORS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "schemas", "conformance", "wire.json")


class DecodingVectorsTest(unittest.TestCase):
    def test_every_sample_is_judged_as_the_reference_judges_it(self):
        with open(VECTORS, encoding="utf-8") as f:
            messages = json.load(f)["messages"]
        checked = 0
        for m in messages:
            if m["kind"] not in READERS:
                continue
            with self.subTest(kind=m["kind"], name=m["name"]):
                self.assertEqual(judge(m["kind"], bytes.fromhex(m["hex"])), m["want"])
            checked += 1
        self.assertGreater(checked, 60)


if __name__ == "__main__":
    unittest.main()
