"""cases.py: what the case drivers (report_test.py, callsite_test.py) share.

check() collects what went wrong; run_case() runs the case named on the command line,
CASE ARGS..., as case_CASE(*ARGS, tmp) with the arguments made absolute and tmp a private
temporary directory, then exits 0 if nothing went wrong, 1 listing what did."""
import os
import sys
import tempfile

problems = []


def check(ok, what):
    if not ok:
        problems.append(what)
    return ok


def run_case(driver, doc, functions):
    if len(sys.argv) < 3 or "case_" + sys.argv[1] not in functions:
        sys.exit(doc)
    if "LD_PRELOAD" not in os.environ:
        sys.exit(f"{driver}: LD_PRELOAD is not set; this test must run under the preload")
    case = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        functions["case_" + case](*[os.path.abspath(a) for a in sys.argv[2:]], tmp)
    for p in problems:
        print(f"FAIL: {case}: {p}", file=sys.stderr)
    if not problems:
        print(f"{driver}: {case}: ok")
    sys.exit(1 if problems else 0)
