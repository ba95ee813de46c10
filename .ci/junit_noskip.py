"""Fail (exit 1, naming them) if a pytest JUnit XML report has skipped
test cases whose "classname::name" matches the regular expression given,
or if no test case matches it at all; else print how many ran. A skip
whose message contains BY_DESIGN (the test's own skip reason, saying
that this platform never runs it) is allowed and not counted as run.

    python junit_noskip.py REPORT.xml REGEX [BY_DESIGN]
"""
import re
import sys
import xml.etree.ElementTree as ET

root = ET.parse(sys.argv[1]).getroot()
pattern = re.compile(sys.argv[2])
by_design = sys.argv[3] if len(sys.argv) > 3 else None
cases = [c for c in root.iter("testcase")
         if pattern.search(f"{c.get('classname', '')}::{c.get('name', '')}")]

ran, skipped = [], []
for c in cases:
    skip = c.find("skipped")
    if skip is None:
        ran.append(c)
    elif not (by_design and by_design in skip.get("message", "")):
        skipped.append(f"{c.get('classname')}::{c.get('name')}")
if not ran or skipped:
    print(f"junit_noskip: {len(cases)} cases match {sys.argv[2]!r}, {len(ran)} ran, "
          f"skipped: {skipped}")
    sys.exit(1)
print(len(ran))
