"""Deal test files into N lists of about equal running time, for CI jobs
that run one pytest per list side by side (.ci/aarch64).

    python deal_by_time.py SECONDS_TABLE N FILE...
    python deal_by_time.py --table JUNIT.xml...   (prints a SECONDS_TABLE)

SECONDS_TABLE has lines "path seconds" (# comments): a file's measured
time. A file not in it is estimated from its size at the table's median
seconds per byte. Files go largest first to the list with the least time so
far (longest-processing-time first); prints one line per list, the files
separated by spaces, then one "# seconds ..." line with each list's total.
With --table it sums the test cases' times of pytest JUnit reports per file
(classname tests.test_x -> tests/test_x.py), largest first.
"""
import collections
import os
import statistics
import sys
import xml.etree.ElementTree as ET


def table(reports):
    seconds = collections.Counter()
    for report in reports:
        for case in ET.parse(report).getroot().iter("testcase"):
            module = case.get("classname", "").split(".")
            module = module[1] if module[0] == "tests" and len(module) > 1 else module[0]
            seconds[f"tests/{module}.py"] += float(case.get("time", 0))
    for path, s in seconds.most_common():
        print(f"{path} {s:.0f}")


def main(table_path, n, files):
    seconds = {}
    with open(table_path) as f:
        for line in f:
            line = line.split("#", 1)[0].split()
            if len(line) == 2:
                seconds[line[0]] = float(line[1])
    rates = [s / os.path.getsize(p) for p, s in seconds.items() if os.path.exists(p)]
    rate = statistics.median(rates) if rates else 1e-3
    cost = {p: seconds.get(p, os.path.getsize(p) * rate) for p in files}
    bins = [[] for _ in range(n)]
    load = [0.0] * n
    for p in sorted(files, key=lambda p: (-cost[p], p)):
        i = load.index(min(load))
        bins[i].append(p)
        load[i] += cost[p]
    for b in bins:
        print(" ".join(b))
    print("# seconds " + " ".join(f"{x:.0f}" for x in load))


if __name__ == "__main__":
    if sys.argv[1] == "--table":
        table(sys.argv[2:])
    else:
        main(sys.argv[1], int(sys.argv[2]), sys.argv[3:])
