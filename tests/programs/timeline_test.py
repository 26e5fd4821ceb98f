#!/usr/bin/env python3
"""timeline_test.py ALLOCSCOPE: allocscope run --timeline FILE.html (issue 18, item 4).

Runs python3 under a 96 MiB limit with retry_mayfail, growing until an allocation fails,
and checks the page: an inline SVG with a sample per point of the charge and RSS lines, the
limit line, a failure and reclaim passes marked, and the samples themselves (the page's
JSON) agreeing with the limit and what was allocated. Then, where chromium is installed, it
opens the page in headless chromium: the DOM chromium built has the SVG and its lines, and a
screenshot is taken (left next to the page when TIMELINE_KEEP names a directory).
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

from cases import check, problems

SCRIPT = r"""
import time
keep = []
failed = 0
for i in range(200):
    try:
        keep.append(bytearray(1 << 20))
    except MemoryError:
        failed += 1
        keep = keep[:20]
    time.sleep(0.005)
print("failed", failed)
"""


def main():
    allocscope = os.path.abspath(sys.argv[1])
    with tempfile.TemporaryDirectory() as tmp:
        page = os.path.join(tmp, "timeline.html")
        r = subprocess.run([allocscope, "run", "--limit", "96M", "--policy", "retry_mayfail",
                            "--timeline", page, "--", "/usr/bin/python3", "-c", SCRIPT],
                           capture_output=True, text=True, timeout=120)
        check(r.returncode == 0 and r.stdout.startswith("failed "), f"run: {r.returncode} {r.stdout!r}")
        failed = int(r.stdout.split()[1]) if r.stdout.startswith("failed ") else 0
        check(failed >= 1, "python3 saw no MemoryError")
        with open(page) as f:
            html = f.read()
        m = re.search(r'<svg id="timeline"[^>]*data-samples="(\d+)"', html)
        n = int(m.group(1)) if m else 0
        check(n >= 20, f"samples: {n}")
        lines = dict(re.findall(r'<polyline class="(\w+)" points="([^"]*)"', html))
        for name in ("charged", "rss", "limit"):
            pts = lines.get(name, "").split()
            check(len(pts) == n, f"{name} line: {len(pts)} points for {n} samples")
        check(html.count('<line class="failure"') >= 1, "no failure marked")
        check(html.count('<line class="reclaim"') >= 1, "no reclaim pass marked")
        samples = json.loads(re.search(r'id="allocscope-samples">(.*?)</script>', html).group(1))
        check(len(samples) == n, f"JSON samples {len(samples)} != {n}")
        check(all(s[3] == 96 << 20 for s in samples), "the limit is not 96 MiB in every sample")
        peak = max(s[1] for s in samples)
        check(60 << 20 <= peak <= (96 << 20) + (1 << 20), f"peak charge in the samples {peak}")
        check(samples[-1][4] == failed, f"failures counted {samples[-1][4]}, python3 saw {failed}")
        check(all(a[0] <= b[0] for a, b in zip(samples, samples[1:])), "samples out of order")

        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        if chromium is None:
            print("timeline_test: no chromium here: the page was checked as text only")
        else:
            base = [chromium, "--headless", "--no-sandbox", "--disable-gpu",
                    f"--user-data-dir={tmp}/chromium"]
            dom = subprocess.run(base + ["--dump-dom", "file://" + page], capture_output=True,
                                 text=True, timeout=120).stdout
            check('<svg id="timeline"' in dom and dom.count("<polyline") == 3,
                  f"chromium's DOM has no SVG with three lines: {dom[:300]!r}")
            shot = os.path.join(tmp, "timeline.png")
            subprocess.run(base + [f"--screenshot={shot}", "--window-size=1000,560",
                                   "file://" + page], capture_output=True, timeout=120)
            ok = os.path.exists(shot) and os.path.getsize(shot) > 10000
            check(ok, "chromium took no screenshot")
            with open(shot, "rb") as f:
                check(f.read(8) == b"\x89PNG\r\n\x1a\n", "the screenshot is not a PNG")
            keep = os.environ.get("TIMELINE_KEEP")
            if keep:
                shutil.copy(page, keep)
                shutil.copy(shot, keep)
    for p in problems:
        print(f"FAIL: timeline: {p}", file=sys.stderr)
    if not problems:
        print("timeline_test: ok")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
