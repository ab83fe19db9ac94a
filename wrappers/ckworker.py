"""A persistent local worker: the wrapper's ``python PROGRAM ROWS OUT`` without a new interpreter.

Started once per core by the local backend (``python ckworker.py PROGRAM``), it imports the
modules the program imports (at its top level or inside functions: numpy, Pillow, OpenCV, ...
are loaded once per worker, not once per piece; ``ckload.py``), then runs pieces on request in
a forked *runner*: it enters the piece's scratch folder (prepared exactly as for the wrapper),
takes the piece's environment, sends its stdout and stderr to ``_condor_stdout`` and
``_condor_stderr`` there, applies the wrapper's checks and exit codes (90: bad arguments, 95:
program missing, 96: no output) and runs the program as ``__main__`` with
``sys.argv = [PROGRAM, ROWS, OUT]``. A program that crashes or is killed takes only its runner
down; the worker reports the exit status (negative: the signal).

A runner takes the next piece too when the last one succeeded and left nothing behind
(``ckstate.py`` says what is restored and what is checked): what the pieces warmed up (memory
already mapped, libraries initialised) is not paid again, which in a fresh fork costs
thousands of page faults per piece. Each piece still starts from its own folder, environment,
``sys.argv``, ``sys.path``, streams and a fresh ``__main__``. A failed piece, anything left
behind or RUNNER_PIECES pieces retire the runner, and the next piece gets a fresh fork.

Protocol, one JSON object per line, on the worker's stdin and stdout (which are moved away from
file descriptors 0 and 1, so nothing the program or an import prints can corrupt them):
``{"ready": ..., "pid": ..., "python": ..., "preloaded": [...]}`` once, then per request
``{"scratch": DIR, "runs": [[PROGRAM, ROWS, OUT], ...], "env": {...}, "status": NAME}`` ->
``{"pid": N}`` (the runner: its process group) and later ``{"exit": CODE, "kept": BOOL}``
(kept: the runner lives on, clean, for the next piece; do not kill its group). Usually ``runs``
holds one run; a *batch* (several small whole chunks, one after the other in the same runner)
has several and a ``status`` file that records each run's exit code. The worker and its runner
die with the coordinator (``PR_SET_PDEATHSIG``, and end of input).

Clones: ``ckworker.py PROGRAM IN,OUT,ERR ...`` forks, once preloaded, one more worker per
``IN,OUT,ERR`` (descriptors the coordinator passed: that worker's requests, answers and log),
so a pool imports the program's modules once, not once per core; a clone speaks the same
protocol and dies with the worker it was forked from. A *standby* (``ckworker.py --standby
IN,OUT ...``, started before the run knew its program) first reads one line
``{"program": P, "log": L, "clones": [L, ...]}``: its log, and how many of its clone channels
to use and their logs. Standard library only, Python 3.6 syntax.
"""

import ctypes
import gc
import json
import os
import select
import signal
import sys
import traceback

from ckload import import_ckjob, preload, remember, run_main
from ckstate import State

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
RUNNER_PIECES = 200  # pieces one runner takes at most before a fresh fork replaces it
DEATH_POLL_S = 0.05  # how often a worker looks for a runner that died without a word


def die_with_parent(parent):
    """Be SIGKILLed when the process that started us ends (Linux); False when unavailable."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if os.getppid() != parent:  # the parent ended before prctl took effect
        os._exit(1)
    return True


def exit_code(exc):
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    sys.stderr.write("%s\n" % (code,))
    return 1


def run_once(argv, scratch, env):
    """Run the program once as the wrapper would (``argv`` = PROGRAM ROWS OUT); its exit code.

    Every run starts from the scratch folder, the piece's environment and a fresh ``__main__``
    namespace, so a program that changes its folder or environment does not change the next
    run of a batch."""
    os.chdir(scratch)
    os.environ.clear()
    os.environ.update(env)
    argv = list(argv)
    out = argv[2] if len(argv) == 3 else ""
    if len(argv) != 3:
        sys.stderr.write("condorkit-wrapper: error: usage: PROGRAM ROWS OUT (got %d "
                         "arguments)\n" % len(argv))
        code = 90
    elif any("/" in a for a in argv):
        sys.stderr.write("condorkit-wrapper: error: PROGRAM, ROWS and OUT must be plain file "
                         "names in the scratch folder\n")
        code = 90
    elif not os.path.isfile(argv[0]):
        sys.stderr.write("condorkit-wrapper: error: program '%s' is not in the scratch "
                         "folder %s\n" % (argv[0], scratch))
        code = 95
    else:
        sys.stderr.write("condorkit-wrapper: host=%s python=%d.%d.%d (%s, persistent "
                         "worker) program=%s rows=%s\n"
                         % ((os.uname().nodename,) + tuple(sys.version_info[:3])
                            + (sys.executable, argv[0], argv[1])))
        sys.argv = ["./" + argv[0], argv[1], argv[2]]
        sys.path[0] = scratch
        try:
            run_main("./" + argv[0])
            code = 0
        except SystemExit as exc:
            code = exit_code(exc)
        except BaseException:
            traceback.print_exc()
            code = 1
        try:
            sys.stdout.flush()
        except BaseException:
            pass
        os.chdir(scratch)
        if code != 0:
            sys.stderr.write("condorkit-wrapper: program exited with code %d\n" % code)
        elif not (os.path.isfile(out) and os.path.getsize(out) > 0):
            sys.stderr.write("condorkit-wrapper: error: program exited 0 but wrote no %s\n"
                             % out)
            code = 96
    if code != 0 and out and "/" not in out and not os.path.exists(out):
        open(out, "wb").close()  # as the wrapper: an output file always exists
    return code


def run_piece(req):
    """One request in the runner: the piece's folder, environment, stdout/stderr files and runs;
    the first non-zero run's exit code (0 when all succeeded).

    A batch (several runs) appends ``OUT CODE`` to the file ``req["status"]`` after each run,
    so the coordinator knows which runs ended and how, even when a later run kills the
    process."""
    scratch = req["scratch"]
    os.chdir(scratch)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    out_fd = os.open("_condor_stdout", flags, 0o644)
    err_fd = os.open("_condor_stderr", flags, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    for fd in (null, out_fd, err_fd):
        os.close(fd)
    status = None
    if req.get("status"):
        status = os.open(os.path.join(scratch, req["status"]),
                         os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        sys.modules.pop("ckjob", None)  # each piece imports its own folder's copy
        import_ckjob(scratch)
        first = 0
        for argv in req["runs"]:
            one = run_once(argv, scratch, req["env"])
            first = first or one
            if status is not None:
                out = argv[2] if len(argv) == 3 else "?"
                os.write(status, ("%s %d\n" % (out, one)).encode("utf-8", "replace"))
        return first
    finally:
        if status is not None:
            os.close(status)


def runner(requests, done, proto_fds, parent):
    """In the forked child: run pieces, one request line at a time, as long as each succeeds
    and leaves the process clean (:meth:`ckstate.State.clean`), for at most RUNNER_PIECES; then
    exit. Never returns.

    A runner that goes on keeps what pieces warmed up (allocated memory, lazily loaded
    modules and libraries) but gives every piece the same start: its own folder, environment,
    ``sys.argv``, ``sys.path``, streams and a fresh ``__main__``; a piece's failure, or
    anything it leaves behind, retires the runner, and the next piece gets a fresh fork."""
    code = 1
    try:
        os.setpgid(0, 0)
        die_with_parent(parent)
        for fd in proto_fds:
            os.close(fd)
        try:  # descendants a piece orphans come back to the runner, so clean() sees them
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        except (OSError, AttributeError):
            pass
        state = State()
        reader = os.fdopen(requests, "r", 1)
        for n, line in enumerate(reader, 1):
            req = json.loads(line)
            code = run_piece(req)
            state.restore(req["scratch"])
            keep = code == 0 and n < RUNNER_PIECES and state.clean()
            os.write(done, ("%d %d\n" % (code, keep)).encode())
            if not keep:
                break
    except BaseException:
        try:
            traceback.print_exc()
        except BaseException:
            pass
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:
            pass
        os._exit(code)


def after_signal(req, code):
    """The child died of a signal: say so in its stderr and leave an (empty) output file."""
    try:
        scratch = req["scratch"]
        with open(os.path.join(scratch, "_condor_stderr"), "a") as fh:
            fh.write("condorkit-wrapper: program killed by signal %d\n" % -code)
        for argv in req["runs"]:
            out = argv[2] if len(argv) == 3 else ""
            if out and "/" not in out and not os.path.exists(os.path.join(scratch, out)):
                open(os.path.join(scratch, out), "wb").close()
    except (OSError, KeyError, TypeError, IndexError):
        pass


class Runner(object):
    """The worker's side of a runner (:func:`runner`): forked in its own process group, fed
    one request line at a time, answering ``CODE KEEP`` per piece."""

    def __init__(self, proto_fds):
        req_r, self.req_w = os.pipe()
        ans_r, ans_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            os.close(self.req_w)
            os.close(ans_r)
            runner(req_r, ans_w, proto_fds, parent=os.getppid())
        os.close(req_r)
        os.close(ans_w)
        self.answers = os.fdopen(ans_r, "rb", 0)
        self.status = None  # its wait status, once reaped
        try:
            os.setpgid(self.pid, self.pid)  # also here: the coordinator may kill the group
        except OSError:
            pass

    def send(self, line):
        """Hand a request line over; False when the runner is gone (it took nothing)."""
        if self.reap(block=False):
            return False
        data = line.encode("utf-8")
        try:
            while data:
                data = data[os.write(self.req_w, data):]
        except OSError:  # EPIPE: it died meanwhile
            return False
        return True

    def wait(self, req):
        """The piece's ``(exit code, kept)``; a runner that dies first gives its status
        (negative: the signal) and is not kept."""
        line = b""
        while self.status is None:
            ready, _, _ = select.select([self.answers], [], [], DEATH_POLL_S)
            chunk = self.answers.read(64) if ready else None
            if chunk:
                line += chunk
                if line.endswith(b"\n"):
                    code, keep = line.split()
                    return int(code), keep == b"1"
            else:
                self.reap(block=chunk == b"")  # end of the answers: it is ending
        status = self.status
        if os.WIFSIGNALED(status):
            code = -os.WTERMSIG(status)
            after_signal(req, code)
            return code, False
        return os.WEXITSTATUS(status), False

    def reap(self, block):
        """True once the runner has ended (and was reaped)."""
        if self.status is None:
            try:
                pid, status = os.waitpid(self.pid, 0 if block else os.WNOHANG)
            except ChildProcessError:
                pid, status = self.pid, 0
            if pid == self.pid:
                self.status = status
        return self.status is not None

    def end(self):
        """Close the worker's ends (a live runner exits at the end of its requests); reap."""
        if self.req_w >= 0:
            self.answers.close()
            os.close(self.req_w)
            self.req_w = -1
        self.reap(block=True)


def clone(channels):
    """Fork one more worker per ``(IN, OUT, ERR)`` in ``channels`` (descriptors: the clone's
    requests, its answers, its log) once this worker has preloaded, so the others do not import
    the same modules again (and share those pages). Returns, in each clone, its own
    ``(IN, OUT)``; in this worker None. A clone dies with this worker (``PR_SET_PDEATHSIG``)."""
    me = os.getpid()
    sys.stdout.flush()
    sys.stderr.flush()
    for k, (rfd, wfd, err) in enumerate(channels):
        if os.fork() == 0:
            os.setsid()  # its own session, as a worker started on its own is
            die_with_parent(me)
            for other in channels[:k] + channels[k + 1:]:
                for fd in other:
                    os.close(fd)
            os.dup2(err, 2)
            os.dup2(2, 1)
            os.close(err)
            return rfd, wfd
    for fds in channels:
        for fd in fds:
            os.close(fd)
    return None


def adoption(rfd, specs):
    """A standby worker's first request (``{"program": P, "log": L, "clones": [L, ...]}``,
    read byte by byte: the rest of the input is the protocol's): its stderr goes to ``log``, one
    clone channel per clone log is kept (the others are closed). None at the end of input."""
    line = b""
    while not line.endswith(b"\n"):
        got = os.read(rfd, 1)
        if not got:
            return None
        line += got
    req = json.loads(line.decode("utf-8"))
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
    log = os.open(req["log"], flags, 0o644)
    os.dup2(log, 2)
    os.dup2(2, 1)
    os.close(log)
    pairs = [[int(f) for f in spec.split(",")] for spec in specs]
    logs = req.get("clones", [])
    for fds in pairs[len(logs):]:
        for fd in fds:
            os.close(fd)
    channels = [(pairs[k][0], pairs[k][1], os.open(logs[k], flags, 0o644))
                for k in range(min(len(pairs), len(logs)))]
    return req["program"], channels


def serve(rfd, wfd, preloaded):
    """Say ready on ``wfd``, then run the requests read from ``rfd`` until their end."""
    reader = os.fdopen(rfd, "r", 1)
    writer = os.fdopen(wfd, "w", 1)

    def say(obj):
        writer.write(json.dumps(obj) + "\n")
        writer.flush()

    say({"ready": True, "pid": os.getpid(), "preloaded": preloaded,
         "python": "%d.%d.%d" % tuple(sys.version_info[:3])})
    run = None  # the live runner
    for line in reader:
        req = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        if run is not None and not run.send(line):
            run.end()
            run = None
        if run is None:
            run = Runner((rfd, wfd))
            run.send(line)  # a runner that dies at once is seen by wait()
        say({"pid": run.pid})
        code, kept = run.wait(req)
        if not kept:
            run.end()
            run = None
        say({"exit": code, "kept": kept})
    writer.flush()


def main(argv):
    if len(argv) < 2:
        sys.stderr.write("usage: ckworker.py PROGRAM [IN,OUT,ERR ...] | --standby [IN,OUT ...]\n")
        return 2
    parent = os.getppid()
    die_with_parent(parent)
    # the protocol moves off descriptors 0 and 1; they become /dev/null and stderr
    rfd, wfd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    if argv[1] == "--standby":  # started before the program was known: wait for it
        got = adoption(rfd, argv[2:])
        if got is None:
            os._exit(0)
        program, channels = got
    else:
        program = argv[1]
        channels = [tuple(int(f) for f in spec.split(",")) for spec in argv[2:]]
    preloaded = preload(program)
    remember(program, "./" + os.path.basename(program))
    if hasattr(gc, "freeze"):  # 3.7+: the children's collections skip the preloaded objects,
        gc.freeze()            # so they do not copy the pages those live on (copy-on-write)
    own = clone(channels)
    if own is not None:
        os.close(rfd)
        os.close(wfd)
        rfd, wfd = own
    code = 0
    try:
        serve(rfd, wfd, preloaded)
    except BrokenPipeError:  # the coordinator went away
        pass
    except BaseException:
        code = 1
        traceback.print_exc()
    finally:  # end of input: leave at once (no interpreter teardown of numpy & co.)
        try:
            sys.stderr.flush()
        finally:
            os._exit(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
