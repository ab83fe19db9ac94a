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

# ------------------------------------------------------------------ bundle (condorkit bundle)
# A bundle (condorkit/bundle.py) is a gzip tarball holding a CPython prefix (python/), a venv of
# the job's packages (venv/) and a key=value manifest (condorkit-bundle.txt: arch, glibc, ...).
# Its listing is checked BEFORE anything is extracted; then it is unpacked into ./_ckenv, the
# venv is pointed at the unpacked interpreter (pyvenv.cfg `home`), and LD_LIBRARY_PATH finds its
# libpython and the other shared libraries it ships. Needs bash, tar, gzip, awk, uname; the
# worker's own Python is never used.
CKENV=_ckenv

now_us() {  # microseconds since the epoch (bash 5), else whole seconds
    local t=${EPOCHREALTIME:-}
    t=${t//[!0-9]/}
    [ -n "$t" ] || t="$(date +%s)000000"
    echo "$t"
}
secs() { printf '%d.%02d' $(( $1 / 1000000 )) $(( $1 % 1000000 / 10000 )); }

# awk program over `LC_ALL=C tar -tvzf` lines: prints "MEMBERS BYTES" and exits 0 when every
# member is safe, else prints the first reason and exits 1. Refused: absolute names, `..` in a
# name, anything but files, folders and links, names that are ambiguous in the listing, members
# below a symlink, symlinks that are absolute, use `..` after a name, or climb above the bundle,
# and hard links to unsafe names. With these rules no link can resolve outside the bundle.
CHECK_MEMBERS='
function fail(msg) { print msg; bad = 1; exit 1 }
function parts(path, arr,    m, n, i, k) {
    n = split(path, m, "/"); k = 0
    for (i = 1; i <= n; i++) if (m[i] != "" && m[i] != ".") arr[++k] = m[i]
    return k
}
function plain(path, what, root_ok,    arr, k, i, s) {
    if (path == "") fail("a " what " has an empty name")
    if (substr(path, 1, 1) == "/") fail(what " " path " is an absolute path")
    k = parts(path, arr); s = ""
    for (i = 1; i <= k; i++) {
        if (arr[i] == "..") fail(what " " path " contains ..")
        s = s (i > 1 ? "/" : "") arr[i]
    }
    if (s == "" && !root_ok) fail(what " " path " names the bundle folder itself")
    return s
}
{
    type = substr($0, 1, 1)
    if (!match($0, /^[^ ]+ +[^ ]+ +[^ ]+ +[^ ]+ +[^ ]+ /)) fail("unreadable listing line: " $0)
    rest = substr($0, RLENGTH + 1); target = ""
    if (type == "l" || type == "h") {
        sep = (type == "l") ? " -> " : " link to "
        i = index(rest, sep)
        if (!i || index(substr(rest, i + length(sep)), sep)) fail("link " rest " is ambiguous")
        name = substr(rest, 1, i - 1); target = substr(rest, i + length(sep))
    } else if (type == "-" || type == "d") {
        name = rest; total += $3
    } else fail("member " rest " is not a file, folder or link")
    nm = plain(name, "member", type == "d")
    if (nm == "") next  # the "./" entry of `tar -C DIR .`
    n++; names[n] = nm; types[n] = type; targets[n] = target
    if (type == "l") links[names[n]] = 1
}
END {
    if (bad) exit 1
    for (j = 1; j <= n; j++) {
        k = parts(names[j], arr); p = ""
        for (i = 1; i < k; i++) {
            p = p (i > 1 ? "/" : "") arr[i]
            if (p in links) fail("member " names[j] " lies below the symlink " p)
        }
        t = targets[j]
        if (types[j] == "l") {
            if (t == "" || substr(t, 1, 1) == "/") fail("symlink " names[j] " points to " t)
            tk = parts(t, tarr); up = 0; named = 0
            for (i = 1; i <= tk; i++) {
                if (tarr[i] != "..") named = 1
                else if (named) fail("symlink " names[j] " -> " t " uses .. after a name")
                else up++
            }
            if (up > k - 1) fail("symlink " names[j] " -> " t " points outside the bundle")
        } else if (types[j] == "h") {
            t = plain(t, "hard link target", 0); tk = parts(t, tarr); p = ""
            for (i = 1; i <= tk; i++) {
                p = p (i > 1 ? "/" : "") tarr[i]
                if (p in links) fail("hard link " names[j] " goes through the symlink " p)
            }
        }
    }
    print n, total + 0
}'

# manifest_field NAME: the value of NAME= in the unpacked bundle's manifest ("" if absent)
manifest_field() { sed -n "s/^$1=//p" "$CKENV/condorkit-bundle.txt" | head -n 1; }

# version_lt A B: true when dotted version A (e.g. 2.31) is older than B
version_lt() {
    local a=$1 b=$2 x y
    while [ -n "$a$b" ]; do
        x=${a%%.*}; y=${b%%.*}
        x=${x:-0}; y=${y:-0}
        [ "$x" -lt "$y" ] && return 0
        [ "$x" -gt "$y" ] && return 1
        case $a in *.*) a=${a#*.} ;; *) a="" ;; esac
        case $b in *.*) b=${b#*.} ;; *) b="" ;; esac
    done
    return 1
}

# worker_glibc: this worker's glibc version ("" when it cannot be told, e.g. a musl system)
worker_glibc() {
    local v
    v=$(getconf GNU_LIBC_VERSION 2>/dev/null) || v=""
    case $v in
        "glibc "*) v=${v#glibc } ;;
        *) v=$(ldd --version 2>&1 | head -n 1) || v=""
           case $v in *GLIBC*|*"GNU libc"*) v=${v##* } ;; *) v="" ;; esac ;;
    esac
    case $v in ""|*[!0-9.]*) echo "" ;; *) echo "$v" ;; esac
}

# use_bundle BUNDLE: unpack the bundle safely into ./_ckenv and set $python to its interpreter,
# or exit 91-94 with the reason.
use_bundle() {
    local b=$1 t0 t1 t2 listing checked errf tarf raw rc want have need pyexe venv libdir ver f tool
    [ -f "$b" ] || die 91 "bundle '$b' was not transferred into $(pwd)"
    [ -r "$b" ] || die 91 "bundle '$b' is not readable"
    for tool in tar gzip awk; do
        command -v "$tool" >/dev/null 2>&1 || die 91 "cannot unpack bundle '$b': no $tool on $(hostname)"
    done
    t0=$(now_us)
    errf=.ckenv.err
    tarf=.ckenv.tar  # decompressed once, then listed (checked) and extracted
    if ! gzip -dc < "$b" > "$tarf" 2>"$errf"; then
        rm -f "$tarf"
        die 91 "bundle '$b' is corrupt or not gzip-compressed: $(head -n 1 "$errf")"
    fi
    # GNU tar lists hard link targets with a leading / or ../ removed unless -P is given
    raw=""
    case "$(tar --version 2>/dev/null | head -n 1)" in *"GNU tar"*) raw=-P ;; esac
    set +e
    listing=$(LC_ALL=C tar -tv $raw -f "$tarf" 2>"$errf")
    rc=$?
    set -e
    if [ "$rc" -ne 0 ]; then
        rm -f "$tarf"
        die 91 "bundle '$b' is not a valid tarball: $(grep -v 'Removing leading' "$errf" | head -n 1)"
    fi
    set +e
    checked=$(printf '%s\n' "$listing" | LC_ALL=C awk "$CHECK_MEMBERS")
    rc=$?
    set -e
    if [ "$rc" -ne 0 ]; then
        rm -f "$tarf" "$errf"
        die 92 "bundle '$b' holds an unsafe member, refusing to unpack it: $checked"
    fi
    rm -rf "$CKENV"
    mkdir "$CKENV"
    LC_ALL=C tar -xf "$tarf" -C "$CKENV" --no-same-owner 2>"$errf" \
        || die 91 "bundle '$b' could not be unpacked: $(head -n 1 "$errf")"
    rm -f "$errf" "$tarf"
    t1=$(now_us)
    [ -f "$CKENV/condorkit-bundle.txt" ] \
        || die 91 "bundle '$b' is not a condorkit bundle (no condorkit-bundle.txt); build it with condorkit bundle"
    [ "$(manifest_field format)" = "condorkit-bundle/1" ] \
        || die 91 "bundle '$b' has format '$(manifest_field format)'; this wrapper reads condorkit-bundle/1"
    want=$(manifest_field os); have=$(uname -s)
    [ "$want" = "$have" ] || die 94 "bundle '$b' is built for $want, but $(hostname) runs $have"
    want=$(manifest_field arch); have=$(uname -m)
    [ "$want" = "$have" ] \
        || die 94 "bundle '$b' is built for $want, but $(hostname) is $have; build it on a $have machine"
    need=$(manifest_field glibc); have=$(worker_glibc)
    if [ -n "$have" ]; then
        if [ -n "$need" ] && version_lt "$have" "$need"; then
            die 94 "bundle '$b' needs glibc >= $need, but $(hostname) has glibc $have; build it on a machine with an older glibc"
        fi
    else
        want=$(manifest_field ld_so)
        [ -z "$want" ] || [ -e "$want" ] \
            || die 94 "bundle '$b' needs the GNU C library (glibc >= $need), but $(hostname) has no $want"
    fi
    pyexe=$(manifest_field python_exe); venv=$(manifest_field venv); libdir=$(manifest_field libdir)
    for f in "$pyexe" "$venv" "$libdir"; do
        case "/$f/" in
            //|*/../*) die 91 "bundle '$b' has a bad manifest (path '$f')" ;;
        esac
    done
    case "$pyexe" in /*) die 91 "bundle '$b' has a bad manifest (path '$pyexe')" ;; esac
    [ -f "$CKENV/$pyexe" ] && [ -x "$CKENV/$pyexe" ] \
        || die 93 "bundle '$b' holds no interpreter $pyexe"
    printf 'home = %s\ninclude-system-site-packages = false\nversion = %s\n' \
        "$PWD/$CKENV/$(dirname "$pyexe")" "$(manifest_field python)" > "$CKENV/$venv/pyvenv.cfg"
    export LD_LIBRARY_PATH="$PWD/$CKENV/$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export VIRTUAL_ENV="$PWD/$CKENV/$venv"
    export PATH="$VIRTUAL_ENV/bin:$PATH"
    unset PYTHONHOME PYTHONPATH
    # the shipped OpenSSL looks for CA certificates where the build machine keeps them
    if [ -z "${SSL_CERT_FILE:-}${SSL_CERT_DIR:-}" ]; then
        for f in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt \
                 /etc/ssl/ca-bundle.pem /etc/ssl/cert.pem; do
            if [ -r "$f" ]; then export SSL_CERT_FILE="$f"; break; fi
        done
    fi
    python="$VIRTUAL_ENV/bin/python"
    set +e
    ver=$("$python" -c 'import sys, encodings; print("%d.%d.%d" % sys.version_info[:3])' 2>"$errf")
    rc=$?
    set -e
    [ "$rc" -eq 0 ] \
        || die 93 "the bundled python does not start on $(hostname) (exit $rc): $(head -n 1 "$errf")"
    rm -f "$errf"
    t2=$(now_us)
    set -- $checked
    echo "condorkit-wrapper: bundle $b: $1 members ($(( $2 / 1048576 )) MB) unpacked in $(secs $(( t1 - t0 ))) s; python $ver started in $(secs $(( t2 - t1 ))) s" >&2
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
