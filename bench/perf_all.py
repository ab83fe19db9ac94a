"""Every figure of docs/perf.md in one command; writes bench/results/perf.md (and per-figure files).

    python3 bench/perf_all.py            # full corpus (made once, ~1 min), about 15 min on 2 cores
    python3 bench/perf_all.py --quick    # 12 small images, 1-2 rounds: checks the benchmarks run

Needs: numpy, simplejpeg, opencv-python-headless (the fast kernels), libjpeg-turbo-progs (djpeg and
cjpeg for the anchors); pyvips (with pyvips-binary) is optional. Run it on a quiet machine: the
figures are medians of interleaved rounds and CPU-time based, but a busy neighbour still skews
them (see /work/shared/bench/NOTES.md).
"""

from __future__ import annotations

import argparse

import perf_download
import perf_luminance
import perf_make_smaller
from perf_common import log, write_result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small corpus, fewest rounds")
    args = ap.parse_args()
    q = args.quick
    parts = []
    data = {}
    text, data["luminance"] = perf_luminance.run(q, 2 if q else 5)
    parts.append(text)
    text, data["download"] = perf_download.run(q, 1 if q else 3, 0.1, 40 if q else 200)
    parts.append(text)
    text, data["make_smaller"] = perf_make_smaller.run(q, 1 if q else 3)
    parts.append(text)
    cmd = "python3 bench/perf_all.py" + (" --quick" if q else "")
    body = f"<!-- made by `{cmd}` -->\n\n" + "".join(
        ("\n" + p).replace("\n# ", "\n## ") for p in parts)
    path = write_result("perf-quick" if q else "perf", body, data)
    print(body)
    log(f"wrote {path}")


if __name__ == "__main__":
    main()
