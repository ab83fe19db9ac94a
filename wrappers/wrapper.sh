#!/bin/bash
# condorkit job wrapper: runs one chunk in the current (scratch) folder, on a pool worker or
# locally; both call it with the same arguments:
#
#   wrapper.sh [-b BUNDLE.tar.gz] PROGRAM ROWS OUT
#
# The folder holds the transferred files: PROGRAM, ckjob.py, ROWS, the bundle if any.
# A *.py PROGRAM runs as `PYTHON PROGRAM ROWS OUT` (the bundle's python, else $CONDORKIT_PYTHON,
# else python3); any other PROGRAM is executed as `./PROGRAM ROWS OUT`.
#
# Exit codes: the program's own exit code, or one of these wrapper failures (each with a one-line
# "condorkit-wrapper: error: ..." reason on stderr):
#   90  usage error (wrong arguments)
#   91  bundle missing, unreadable or corrupt
#   92  bundle holds an unsafe member (absolute path or ..)
#   93  no usable Python interpreter on this worker
#   94  bundle built for another architecture or C library
#   95  PROGRAM not found in the scratch folder
#   96  PROGRAM exited 0 but OUT is missing or empty
# On a non-zero exit an empty OUT is left behind if the program wrote none (see ensure_out).
set -eu

die() { code=$1; shift; echo "condorkit-wrapper: error: $*" >&2; exit "$code"; }

# On any failure leave an EMPTY OUT behind (if the program wrote none): HTCondor puts a job whose
# listed output file is missing on hold instead of recording its exit code and retrying it
# (max_retries). An empty file is never valid results, so nothing mistakes it for a result.
out=""
ensure_out() {
    rc=$?
    case "$out" in
        "" | */*) ;;  # unknown yet, or not a plain name in the scratch folder: leave it alone
        *) if [ "$rc" -ne 0 ] && [ ! -e "$out" ]; then : > "$out" 2>/dev/null || true; fi ;;
    esac
    exit "$rc"
}
trap ensure_out EXIT

bundle=""
if [ "${1:-}" = "-b" ]; then
    [ $# -ge 2 ] || die 90 "-b needs a bundle file name"
    bundle=$2
    shift 2
fi
[ $# -eq 3 ] || die 90 "usage: wrapper.sh [-b BUNDLE] PROGRAM ROWS OUT (got $# arguments)"
program=$1
rows=$2
out=$3
case "$program$rows$out" in
    */*) die 90 "PROGRAM, ROWS and OUT must be plain file names in the scratch folder" ;;
esac
[ -f "$program" ] || die 95 "program '$program' is not in the scratch folder $(pwd)"

# use_bundle BUNDLE: unpack the bundle safely into ./_ckenv and set $python to its interpreter,
# or exit 91-94 with the reason.
use_bundle() {
    [ -f "$1" ] || die 91 "bundle '$1' was not transferred"
    die 91 "this wrapper cannot unpack bundles yet"
}

python=""
if [ -n "$bundle" ]; then
    use_bundle "$bundle"
else
    python=${CONDORKIT_PYTHON:-python3}
fi

case "$program" in
    *.py)
        command -v "$python" >/dev/null 2>&1 || die 93 "no Python interpreter '$python' on $(hostname)"
        pyver=$("$python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null) \
            || die 93 "'$python' on $(hostname) does not run"
        echo "condorkit-wrapper: host=$(hostname) python=$pyver ($python) program=$program rows=$rows" >&2
        cmd=("$python" "./$program" "$rows" "$out")
        ;;
    *)
        echo "condorkit-wrapper: host=$(hostname) program=$program rows=$rows" >&2
        chmod +x "./$program" 2>/dev/null || true
        cmd=("./$program" "$rows" "$out")
        ;;
esac

set +e
"${cmd[@]}"
rc=$?
set -e
if [ "$rc" -ne 0 ]; then
    echo "condorkit-wrapper: program exited with code $rc" >&2
    exit "$rc"
fi
[ -s "$out" ] || die 96 "program exited 0 but wrote no $out"
exit 0
