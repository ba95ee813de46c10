"""Fail (exit 1, naming them) if a pytest JUnit XML report has skipped
test cases whose "classname::name" matches the regular expression given,
or if no test case matches it at all; else print how many ran.

    python junit_noskip.py REPORT.xml REGEX
"""
import re
import sys
import xml.etree.ElementTree as ET

root = ET.parse(sys.argv[1]).getroot()
pattern = re.compile(sys.argv[2])
cases = [c for c in root.iter("testcase")
         if pattern.search(f"{c.get('classname', '')}::{c.get('name', '')}")]
skipped = [f"{c.get('classname')}::{c.get('name')}" for c in cases if c.find("skipped") is not None]
if not cases or skipped:
    print(f"junit_noskip: {len(cases)} cases match {sys.argv[2]!r}, skipped: {skipped}")
    sys.exit(1)
print(len(cases))
