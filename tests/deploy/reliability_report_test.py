#!/usr/bin/python3
"""scripts/reliability_report.py counts a skipped fault test as skipped, never as passed (#18)."""

import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))

import reliability_report  # noqa: E402


class FaultStatus(unittest.TestCase):
    def test_gtest_json_results(self):
        # The shapes gtest 1.12 writes with --gtest_output=json.
        passed = {"name": "A", "status": "RUN", "result": "COMPLETED", "time": "1s"}
        skipped = {"name": "B", "status": "RUN", "result": "SKIPPED", "time": "0s"}
        failed = {"name": "C", "status": "RUN", "result": "COMPLETED", "time": "1s",
                  "failures": [{"failure": "x", "type": ""}]}
        disabled = {"name": "D", "status": "NOTRUN", "result": "SUPPRESSED", "time": "0s"}
        self.assertEqual(reliability_report.fault_status(passed), "passed")
        self.assertEqual(reliability_report.fault_status(skipped), "skipped")
        self.assertEqual(reliability_report.fault_status(failed), "failed")
        self.assertEqual(reliability_report.fault_status(disabled), "skipped")


if __name__ == "__main__":
    unittest.main()
