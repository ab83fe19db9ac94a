#!/bin/bash
# condorkit job wrapper: runs one chunk in the current (scratch) folder, on a pool worker or
# locally; both call it with the same arguments:
#
#   wrapper.sh [-b BUNDLE.tar.gz -k SHA256:BYTES:MEMBERS] PROGRAM ROWS OUT
#
# The folder holds the transferred files: PROGRAM, ckjob.py, ROWS, the bundle if any. -k carries
# what the submit side knows about the bundle: its sha256, and the bytes and members it unpacks
# to (docs/bundle.md); a bundle is never used without it.
# A *.py PROGRAM runs as `PYTHON PROGRAM ROWS OUT` (the bundle's python, or the worker's python3
# with the bundle's packages, else $CONDORKIT_PYTHON, else python3); any other PROGRAM is
# executed as `./PROGRAM ROWS OUT`.
#
# Exit codes: the program's own exit code, or one of these wrapper failures (each with a one-line
# "condorkit-wrapper: error: ..." reason on stderr):
#   90  usage error (wrong arguments)
#   91  bundle missing, unreadable, corrupt, or not the one the submit file names (sha256)
#   92  bundle holds an unsafe member, or more bytes or members than declared: nothing extracted
#   93  no usable Python interpreter on this worker (or none the bundle has packages for)
#   94  bundle built for another OS, architecture or a newer C library
#   95  PROGRAM not found in the scratch folder
#   96  PROGRAM exited 0 but OUT is missing or empty
# On a non-zero exit an empty OUT is left behind if the program wrote none (see ensure_out).
set -eu
WRAPPER_T0=${EPOCHREALTIME:-}  # when the wrapper started (bash 5), for the setup= figure

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
check=""
while [ $# -gt 0 ]; do
    case "$1" in
        -b) [ $# -ge 2 ] || die 90 "-b needs a bundle file name"; bundle=$2; shift 2 ;;
        -k) [ $# -ge 2 ] || die 90 "-k needs SHA256:BYTES:MEMBERS"; check=$2; shift 2 ;;
        *) break ;;
    esac
done
[ $# -eq 3 ] || die 90 "usage: wrapper.sh [-b BUNDLE -k SHA256:BYTES:MEMBERS] PROGRAM ROWS OUT (got $# arguments)"
program=$1
rows=$2
out=$3
case "$program$rows$out$bundle" in
    */*) die 90 "PROGRAM, ROWS, OUT and BUNDLE must be plain file names in the scratch folder" ;;
esac
if [ -n "$bundle" ]; then
    case "$check" in
        "") die 90 "-b $bundle needs -k SHA256:BYTES:MEMBERS (render the submit file with condorkit)" ;;
    esac
    echo "$check" | grep -Eq '^[0-9a-f]{64}:[0-9]{1,15}:[0-9]{1,9}$' \
        || die 90 "-k '$check' is not SHA256:BYTES:MEMBERS"
fi
[ -f "$program" ] || die 95 "program '$program' is not in the scratch folder $(pwd)"

# ------------------------------------------------------------------ bundle (condorkit bundle)
# A bundle (condorkit/bundle.py) is a gzip tarball with a key=value manifest as its first member
# (condorkit-bundle.txt). Two kinds, told by the manifest's `format`:
#   condorkit-wheels/1  packages only, one site-packages set per CPython version (sets/cp39,
#                       sets/cp310, ...) unpacked from manylinux wheels: the worker's own python3
#                       runs the program with the set of its version first on PYTHONPATH.
#   condorkit-bundle/1  a CPython prefix (python/) and a venv of the packages (venv/): the
#                       worker's Python is never used; LD_LIBRARY_PATH finds the shipped libraries.
# Steps: the tarball's sha256 must equal the one in -k (else 91); a tree unpacked earlier on this
# node for the same sha256 is reused (node cache, below); otherwise the tarball is decompressed
# (at most the declared size), its listing is checked member by member BEFORE anything is
# extracted (92), and it is extracted into the node cache, or into ./_ckenv when there is none.
#
# Node cache: ${CONDORKIT_BUNDLE_CACHE:-/var/tmp/condorkit-bundles-UID}/SHA256/ ("off" disables
# it). The folder must be owned by this user and not writable by others; a tree appears there by
# one rename once complete, under an flock (when util-linux flock exists) so that concurrent jobs
# unpack once; each job holds a shared lock on its tree while it runs, and trees unused for 7 days
# are removed by a later job when nobody holds them.
CKENV=_ckenv

now_us() {  # microseconds since the epoch (bash 5), else whole seconds
    local t=${EPOCHREALTIME:-}
    t=${t//[!0-9]/}
    [ -n "$t" ] || t="$(date +%s)000000"
    echo "$t"
}
secs() { printf '%d.%02d' $(( $1 / 1000000 )) $(( $1 % 1000000 / 10000 )); }

# awk program over a listing in GNU tar's `-tv --numeric-owner --quoting-style=c` form (or the
# same lines written by LIST_PY): `TYPE UID/GID SIZE DATE TIME "NAME"[ -> "T"| link to "T"]`.
# The first five fields hold no quote, and names are C-quoted, so a name can never be mistaken
# for a field or a link arrow. Prints "MEMBERS BYTES" and exits 0 when every member is safe and
# within -v maxn (members) and maxb (bytes of regular files), else prints the reason, exits 1.
# Refused: absolute names, `..` anywhere in a name, anything but files, folders and links, a name
# twice, members below a symlink or a file; symlinks that are empty, absolute, use `..` after a
# name, climb above the bundle, or do not lead straight to a file or folder of the bundle (no
# dangling links, no chains, no links through links); hard links to anything but an earlier file.
CHECK_MEMBERS='
function fail(msg) { print msg; bad = 1; exit 1 }
function unq(s,    i, c, n) {  # content of the C-quoted string opening s (escapes kept); QEND
    QEND = 0
    if (substr(s, 1, 1) != "\"") return ""
    n = length(s)
    for (i = 2; i <= n; i++) {
        c = substr(s, i, 1)
        if (c == "\\") { i++; continue }
        if (c == "\"") { QEND = i; return substr(s, 2, i - 2) }
    }
    return ""
}
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
function under_link(path, what,    arr, k, i, p) {  # no proper prefix of path is a link or file
    k = parts(path, arr); p = ""
    for (i = 1; i < k; i++) {
        p = p (i > 1 ? "/" : "") arr[i]
        if (p in kind && kind[p] != "d") fail(what " lies below the " (kind[p] == "l" ? "symlink " : "file ") p)
    }
}
{
    type = substr($0, 1, 1)
    q = index($0, "\"")
    if (q == 0) fail("unreadable listing line: " $0)
    nf = split(substr($0, 1, q - 1), f, " ")
    rest = substr($0, q)
    name = unq(rest)
    if (!QEND) fail("unreadable listing line: " $0)
    tail = substr(rest, QEND + 1); target = ""
    if (type == "l" && substr(tail, 1, 4) == " -> ") {
        target = unq(substr(tail, 5)); if (QEND != length(tail) - 4) fail("link " name " is ambiguous")
    } else if (type == "h" && substr(tail, 1, 9) == " link to ") {
        target = unq(substr(tail, 10)); if (QEND != length(tail) - 9) fail("link " name " is ambiguous")
    } else if (tail != "" || type == "l" || type == "h") fail("listing line " $0 " is ambiguous")
    if (type != "-" && type != "d" && type != "l" && type != "h")
        fail("member " name " is not a file, folder or link")
    if (nf != 5 || f[3] !~ /^[0-9]+$/) fail("unreadable listing line: " $0)
    nm = plain(name, "member", type == "d")
    if (nm == "") next  # the "./" entry of `tar -C DIR .`
    if (nm in kind) fail("member " nm " appears twice")
    n++; names[n] = nm; kind[nm] = type; targets[n] = target; order[nm] = n
    if (type == "-") total += f[3]
    if (n > maxn + 0) fail("the bundle holds more than the declared " maxn " members")
    if (total > maxb + 0) fail("the bundle unpacks to more than the declared " maxb " bytes")
}
END {
    if (bad) exit 1
    for (j = 1; j <= n; j++) {  # folders that exist only as the parents of members
        k = parts(names[j], arr); p = ""
        for (i = 1; i < k; i++) { p = p (i > 1 ? "/" : "") arr[i]; if (!(p in kind)) implied[p] = 1 }
    }
    for (j = 1; j <= n; j++) under_link(names[j], "member " names[j])
    for (j = 1; j <= n; j++) {
        t = targets[j]
        if (kind[names[j]] == "l") {
            if (t == "" || substr(t, 1, 1) == "/") fail("symlink " names[j] " points to " t)
            k = parts(names[j], arr); tk = parts(t, tarr); up = 0; named = 0
            for (i = 1; i <= tk; i++) {
                if (tarr[i] != "..") named = 1
                else if (named) fail("symlink " names[j] " -> " t " uses .. after a name")
                else up++
            }
            if (up > k - 1) fail("symlink " names[j] " -> " t " points outside the bundle")
            p = ""
            for (i = 1; i < k - up; i++) p = p (p == "" ? "" : "/") arr[i]
            for (i = up + 1; i <= tk; i++) p = p (p == "" ? "" : "/") tarr[i]
            if (p != "") {
                if (!(p in kind) && !(p in implied))
                    fail("symlink " names[j] " -> " t " leads to nothing in the bundle")
                if ((p in kind) && (kind[p] == "l" || kind[p] == "h")) fail("symlink " names[j] " -> " t " leads to another link")
                under_link(p, "symlink " names[j] " -> " t)
            }
        } else if (kind[names[j]] == "h") {
            p = plain(t, "hard link target", 0)
            if (!(p in kind) || kind[p] != "-" || order[p] > j)
                fail("hard link " names[j] " does not lead to an earlier file of the bundle")
            under_link(p, "hard link " names[j])
        }
    }
    print n, total + 0
}'

# Python programs for workers whose tar is not GNU tar (Python 3.6+ syntax, standard library):
# LIST_PY TAR prints the listing in the CHECK_MEMBERS form; EXTRACT_PY TAR DIR extracts it.
LIST_PY='
import sys, tarfile
def q(s):
    out = []
    for c in bytearray(s.encode("utf-8", "surrogateescape")):
        out.append("\\" + chr(c) if c in (34, 92) else chr(c) if 32 <= c < 127 else "\\%03o" % c)
    return "\"" + "".join(out) + "\""
with tarfile.open(sys.argv[1], "r:") as tar:
    for m in tar:
        if m.issparse(): t = "S"
        elif m.isreg(): t = "-"
        elif m.isdir(): t = "d"
        elif m.issym(): t = "l"
        elif m.islnk(): t = "h"
        else: t = "c"
        link = {"l": " -> ", "h": " link to "}.get(t)
        print("%s 0/0 %d 1970-01-01 00:00 %s%s" % (t, m.size if t == "-" else 0, q(m.name),
                                                    link + q(m.linkname) if link else ""))
'
EXTRACT_PY='
import sys, tarfile
with tarfile.open(sys.argv[1], "r:") as tar:
    if hasattr(tarfile, "data_filter"):
        tar.extractall(sys.argv[2], filter="data")
    else:
        tar.extractall(sys.argv[2])
'

# load_manifest DIR: read the unpacked bundle's key=value manifest into MANIFEST (first value of
# each key wins; one read instead of a sed per field)
declare -A MANIFEST
load_manifest() {
    local k v
    MANIFEST=()
    [ -f "$1/condorkit-bundle.txt" ] || return 0
    while IFS='=' read -r k v || [ -n "$k" ]; do
        case "$k" in ""|*[!A-Za-z0-9_]*) continue ;; esac
        [ -n "${MANIFEST[$k]+set}" ] || MANIFEST[$k]=$v
    done < "$1/condorkit-bundle.txt"
}

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

# sha256_of FILE: the hex sha256 of FILE ("" when no tool can compute it)
sha256_of() {
    local s=""
    if command -v sha256sum >/dev/null 2>&1; then
        s=$(sha256sum < "$1" 2>/dev/null) || s=""
        s=${s%% *}
    elif command -v python3 >/dev/null 2>&1; then
        s=$(python3 -c 'import hashlib, sys
h = hashlib.sha256()
with open(sys.argv[1], "rb") as f:
    for b in iter(lambda: f.read(1 << 20), b""): h.update(b)
print(h.hexdigest())' "$1" 2>/dev/null) || s=""
    fi
    echo "$s"
}

# unpack_into BUNDLE DIR MAXB MAXN: decompress (at most the declared size), check the listing,
# extract into DIR (created; must not exist). Sets $checked to "MEMBERS BYTES". Exits 91/92.
unpack_into() {
    local b=$1 dir=$2 maxb=$3 maxn=$4 tarf=$2.tar errf=$2.err limit got rc gnu="" listing
    limit=$(( maxb + 6144 * (maxn + 4) + 1048576 ))
    set +e
    gzip -dc < "$b" 2>"$errf" | head -c $(( limit + 1 )) > "$tarf"
    rc=${PIPESTATUS[0]}
    set -e
    got=$(wc -c < "$tarf" | tr -d ' ')
    if [ "$got" -gt "$limit" ]; then
        rm -f "$tarf" "$errf"
        die 92 "bundle '$b' decompresses to more than the declared size ($maxb bytes in $maxn members), refusing to unpack it"
    fi
    if [ "$rc" -ne 0 ]; then
        rm -f "$tarf"
        die 91 "bundle '$b' is corrupt or not gzip-compressed: $(head -n 1 "$errf")"
    fi
    case "$(tar --version 2>/dev/null | head -n 1)" in *"GNU tar"*) gnu=1 ;; esac
    set +e
    if [ -n "$gnu" ]; then
        # -P: hard link targets as stored (GNU tar would strip a leading / or ../ otherwise)
        listing=$(LC_ALL=C tar -tv -P --numeric-owner --quoting-style=c -f "$tarf" 2>"$errf")
    elif command -v python3 >/dev/null 2>&1; then
        listing=$(python3 -c "$LIST_PY" "$tarf" 2>"$errf")
    else
        rm -f "$tarf"
        die 91 "cannot check bundle '$b' safely on $(hostname): needs GNU tar or python3"
    fi
    rc=$?
    set -e
    if [ "$rc" -ne 0 ]; then
        rm -f "$tarf"
        die 91 "bundle '$b' is not a valid tarball: $(grep -v 'Removing leading' "$errf" | tail -n 1)"
    fi
    set +e
    checked=$(printf '%s\n' "$listing" | LC_ALL=C awk -v maxn="$maxn" \
        -v maxb="$(( maxb + maxb / 20 + 1048576 ))" "$CHECK_MEMBERS")
    rc=$?
    set -e
    if [ "$rc" -ne 0 ]; then
        rm -f "$tarf" "$errf"
        die 92 "bundle '$b' holds an unsafe member, refusing to unpack it: $checked"
    fi
    mkdir "$dir"
    if [ -n "$gnu" ]; then
        LC_ALL=C tar -xf "$tarf" -C "$dir" --no-same-owner 2>"$errf" \
            || die 91 "bundle '$b' could not be unpacked: $(head -n 1 "$errf")"
    else
        python3 -c "$EXTRACT_PY" "$tarf" "$dir" 2>"$errf" \
            || die 91 "bundle '$b' could not be unpacked: $(tail -n 1 "$errf")"
    fi
    rm -f "$errf" "$tarf"
}

# finish_tree DIR FINAL: make a tree unpacked in DIR usable once it lies at FINAL (interpreter
# bundles: the venv's home is the absolute path of the unpacked interpreter)
finish_tree() {
    local dir=$1 final=$2 pyexe venv
    load_manifest "$dir"
    [ "${MANIFEST[format]:-}" = "condorkit-bundle/1" ] || return 0
    pyexe=${MANIFEST[python_exe]:-}; venv=${MANIFEST[venv]:-}
    case "/$pyexe/$venv/" in //*|*/../*) return 0 ;; esac  # refused later by use_bundle
    [ -d "$dir/$venv" ] && [ ! -L "$dir/$venv" ] || return 0
    printf 'home = %s\ninclude-system-site-packages = false\nversion = %s\n' \
        "$final/$(dirname "$pyexe")" "${MANIFEST[python]:-}" > "$dir/$venv/pyvenv.cfg"
}

# cache_root: the node cache folder, created if needed ("" when off or not safe to use)
cache_root() {
    local c=${CONDORKIT_BUNDLE_CACHE:-/var/tmp/condorkit-bundles-$(id -u)}
    case "$c" in off|none|no|0|"") echo ""; return 0 ;; /*) ;; *) echo ""; return 0 ;; esac
    [ -d "$c" ] || mkdir -m 700 -p "$c" 2>/dev/null || { echo ""; return 0; }
    # ours, a real folder, nobody else may write into it
    if [ -L "$c" ] || [ ! -O "$c" ] || [ ! -w "$c" ]; then echo ""; return 0; fi
    chmod go-w "$c" 2>/dev/null || { echo ""; return 0; }
    echo "$c"
}

# cache_evict ROOT: remove trees nobody used for 7 days and nobody holds (best effort)
cache_evict() {
    local root=$1 d
    command -v flock >/dev/null 2>&1 || return 0
    for d in $(find "$root" -mindepth 1 -maxdepth 1 -name '[0-9a-f]*' -type d -mtime +7 2>/dev/null); do
        ( exec 7>"$d.lock" && flock -n -x 7 && rm -rf "$d" "$d.lock" ) 2>/dev/null || true
    done
    find "$root" -mindepth 1 -maxdepth 1 -name '.tmp-*' -mtime +1 -exec rm -rf {} + 2>/dev/null || true
}

# use_bundle BUNDLE: verify, unpack (or reuse) and set up the bundle; sets $python (and $pyver);
# or exits 91-94 with the reason.
use_bundle() {
    local b=$1 t0 t1 t2 rc want have need sha maxb maxn root="" tree="" how tmp fmt tool
    local pyexe venv libdir ver f tag sets errf=.ckenv.err
    [ -f "$b" ] || die 91 "bundle '$b' was not transferred into $(pwd)"
    [ -r "$b" ] || die 91 "bundle '$b' is not readable"
    for tool in tar gzip awk head; do
        command -v "$tool" >/dev/null 2>&1 || die 91 "cannot unpack bundle '$b': no $tool on $(hostname)"
    done
    t0=$(now_us)
    IFS=: read -r want maxb maxn <<< "$check"
    sha=$(sha256_of "$b")
    [ -n "$sha" ] || die 91 "cannot verify bundle '$b' on $(hostname): no sha256sum or python3"
    [ "$sha" = "$want" ] \
        || die 91 "bundle '$b' is not the one the submit file names: sha256 $sha, expected $want (rebuilt or damaged after submit? submit again)"
    root=$(cache_root)
    if [ -n "$root" ] && [ -f "$root/$sha/.condorkit-ready" ]; then
        tree=$root/$sha; how="reused from the node cache"
    elif [ -n "$root" ]; then
        if command -v flock >/dev/null 2>&1; then
            exec 8>"$root/$sha.lock"
            flock -w 900 8 || true  # no lock after 15 min: unpack anyway (the rename decides)
        fi
        if [ -f "$root/$sha/.condorkit-ready" ]; then
            tree=$root/$sha; how="reused from the node cache"
        else
            cache_evict "$root"
            tmp=$root/.tmp-$sha-$$
            rm -rf "$tmp"
            # in a subshell: if anything fails here (a full /var/tmp, say), the job unpacks into
            # its scratch folder below, which repeats every check and reports a bad bundle
            if note=$( (unpack_into "$b" "$tmp" "$maxb" "$maxn" && finish_tree "$tmp" "$root/$sha" \
                        && echo "$checked" > "$tmp/.condorkit-ready") 2>&1 ); then
                if mv -T "$tmp" "$root/$sha" 2>/dev/null; then
                    tree=$root/$sha; how="unpacked into the node cache"
                else
                    rm -rf "$tmp"
                    [ -f "$root/$sha/.condorkit-ready" ] && { tree=$root/$sha; how="reused from the node cache"; }
                fi
            else
                rm -rf "$tmp" "$tmp.tar" "$tmp.err"
                echo "condorkit-wrapper: node cache $root not used (${note##*error: }); unpacking into the scratch folder" >&2
            fi
        fi
        if [ -n "$tree" ] && command -v flock >/dev/null 2>&1; then
            exec 8>"$root/$sha.lock"   # the job holds a shared lock: no eviction under it
            flock -s -w 60 8 || true
        fi
    fi
    if [ -z "$tree" ]; then
        rm -rf "$CKENV"
        unpack_into "$b" "$CKENV" "$maxb" "$maxn"
        tree=$PWD/$CKENV; how="unpacked"
        finish_tree "$tree" "$tree"
    else
        checked=$(head -n 1 "$tree/.condorkit-ready")
        touch "$tree/.condorkit-ready" "$tree" 2>/dev/null || true
    fi
    t1=$(now_us)
    [ -f "$tree/condorkit-bundle.txt" ] \
        || die 91 "bundle '$b' is not a condorkit bundle (no condorkit-bundle.txt); build it with condorkit bundle"
    load_manifest "$tree"
    fmt=${MANIFEST[format]:-}
    case "$fmt" in
        condorkit-bundle/1|condorkit-wheels/1) ;;
        *) die 91 "bundle '$b' has format '$fmt'; this wrapper reads condorkit-bundle/1 and condorkit-wheels/1" ;;
    esac
    want=${MANIFEST[os]:-}; have=$(uname -s)
    [ "$want" = "$have" ] || die 94 "bundle '$b' is built for $want, but $(hostname) runs $have"
    want=${MANIFEST[arch]:-}; have=$(uname -m)
    [ "$want" = "$have" ] \
        || die 94 "bundle '$b' is built for $want, but $(hostname) is $have; build it on a $have machine"
    need=${MANIFEST[glibc]:-}; have=$(worker_glibc)
    if [ -n "$have" ]; then
        if [ -n "$need" ] && version_lt "$have" "$need"; then
            die 94 "bundle '$b' needs glibc >= $need, but $(hostname) has glibc $have; build it on a machine with an older glibc"
        fi
    else
        want=${MANIFEST[ld_so]:-}
        [ -z "$want" ] || [ -e "$want" ] \
            || die 94 "bundle '$b' needs the GNU C library (glibc >= $need), but $(hostname) has no $want"
    fi
    unset PYTHONHOME PYTHONPATH
    if [ "$fmt" = "condorkit-wheels/1" ]; then
        python=${CONDORKIT_PYTHON:-python3}
        sets=${MANIFEST[sets]:-}
        command -v "$python" >/dev/null 2>&1 \
            || die 93 "bundle '$b' brings packages for CPython ${sets//cp3/3.}, but $(hostname) has no $python"
        set +e
        tag=$("$python" -c 'import sys; print("%s cp%d%d %d.%d.%d" % ((sys.implementation.name,) + sys.version_info[:2] + sys.version_info[:3]))' 2>"$errf")
        rc=$?
        set -e
        [ "$rc" -eq 0 ] || die 93 "$python on $(hostname) does not start (exit $rc): $(head -n 1 "$errf")"
        case "$tag" in
            "cpython "*) tag=${tag#cpython }; ver=${tag#* }; tag=${tag%% *} ;;
            *) die 93 "$python on $(hostname) is ${tag%% *}, not CPython; the bundle's packages are built for CPython" ;;
        esac
        case " $sets " in
            *" $tag "*) ;;
            *) die 93 "$python on $(hostname) is CPython ${tag/cp3/3.}, but bundle '$b' has packages only for ${sets//cp3/3.}; build it with --pythons including ${tag/cp3/3.}" ;;
        esac
        [ -d "$tree/sets/$tag" ] || die 91 "bundle '$b' lists $tag but has no sets/$tag"
        export PYTHONPATH="$tree/sets/$tag"
        export PYTHONNOUSERSITE=1
    else
        pyexe=${MANIFEST[python_exe]:-}; venv=${MANIFEST[venv]:-}
        libdir=${MANIFEST[libdir]:-}
        for f in "$pyexe" "$venv" "$libdir"; do
            case "/$f/" in
                //|*/../*) die 91 "bundle '$b' has a bad manifest (path '$f')" ;;
            esac
        done
        case "$pyexe" in /*) die 91 "bundle '$b' has a bad manifest (path '$pyexe')" ;; esac
        [ -f "$tree/$pyexe" ] && [ -x "$tree/$pyexe" ] \
            || die 93 "bundle '$b' holds no interpreter $pyexe"
        export LD_LIBRARY_PATH="$tree/$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        export VIRTUAL_ENV="$tree/$venv"
        export PATH="$VIRTUAL_ENV/bin:$PATH"
        # the shipped OpenSSL looks for CA certificates where the build machine keeps them
        if [ -z "${SSL_CERT_FILE:-}${SSL_CERT_DIR:-}" ]; then
            for f in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt \
                     /etc/ssl/ca-bundle.pem /etc/ssl/cert.pem; do
                if [ -r "$f" ]; then export SSL_CERT_FILE="$f"; break; fi
            done
        fi
        python="$VIRTUAL_ENV/bin/python"
    fi
    if [ "$fmt" = "condorkit-bundle/1" ]; then
        set +e
        ver=$("$python" -c 'import sys, encodings; print("%d.%d.%d" % sys.version_info[:3])' 2>"$errf")
        rc=$?
        set -e
        [ "$rc" -eq 0 ] \
            || die 93 "the bundled python does not start on $(hostname) (exit $rc): $(head -n 1 "$errf")"
    fi
    rm -f "$errf"
    pyver=$ver
    t2=$(now_us)
    set -- $checked
    echo "condorkit-wrapper: bundle $b: $1 members ($(( $2 / 1048576 )) MB) $how in $(secs $(( t1 - t0 ))) s (sha256 ok); python $ver started in $(secs $(( t2 - t1 ))) s" >&2
}

# " started=EPOCH setup=S": when the wrapper started and how long it took until the program
# starts (for measuring a job's overhead from its stderr); nothing without bash 5
setup_note() {
    local t0=${WRAPPER_T0//[!0-9]/} t1
    t1=$(now_us)
    [ -n "$t0" ] && [ "${#t1}" -gt 10 ] || return 0
    printf ' started=%s setup=%ss' "$WRAPPER_T0" "$(secs $(( t1 - t0 )))"
}

python=""
pyver=""
if [ -n "$bundle" ]; then
    use_bundle "$bundle"
else
    python=${CONDORKIT_PYTHON:-python3}
fi

case "$program" in
    *.py)
        command -v "$python" >/dev/null 2>&1 || die 93 "no Python interpreter '$python' on $(hostname)"
        if [ -z "$pyver" ]; then
            pyver=$("$python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null) \
                || die 93 "'$python' on $(hostname) does not run"
        fi
        echo "condorkit-wrapper: host=$(hostname) python=$pyver ($python) program=$program rows=$rows$(setup_note)" >&2
        cmd=("$python" "./$program" "$rows" "$out")
        ;;
    *)
        echo "condorkit-wrapper: host=$(hostname) program=$program rows=$rows$(setup_note)" >&2
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
if [ -n "${WRAPPER_T0//[!0-9]/}" ]; then
    t_end=$(now_us)
    echo "condorkit-wrapper: done: wall=$(secs $(( t_end - ${WRAPPER_T0//[!0-9]/} )))s" >&2
fi
exit 0
