"""A persistent local worker: the wrapper's ``python PROGRAM ROWS OUT`` without a new interpreter.

Started once per core by the local backend (``python ckworker.py PROGRAM``), it imports the
modules the program imports (at its top level or inside functions: numpy, Pillow, OpenCV, ...
are loaded once per worker, not once per piece), then runs pieces on request. For each piece it
forks; the child enters the piece's scratch folder (prepared exactly as for the wrapper), takes
the piece's environment, sends its stdout and stderr to ``_condor_stdout`` and
``_condor_stderr`` there, applies the wrapper's checks and exit codes (90: bad arguments, 95:
program missing, 96: no output) and runs the program as ``__main__`` with ``sys.argv =
[PROGRAM, ROWS, OUT]``. A program that crashes or is killed takes only its child down; the
worker reports the exit status (negative: the signal).

Protocol, one JSON object per line, on the worker's stdin and stdout (which are moved away from
file descriptors 0 and 1, so nothing the program or an import prints can corrupt them):
``{"ready": ..., "python": ..., "preloaded": [...]}`` once, then per request
``{"scratch": DIR, "runs": [[PROGRAM, ROWS, OUT], ...], "env": {...}, "status": NAME}`` ->
``{"pid": N}`` and later ``{"exit": CODE}``. Usually ``runs`` holds one run; a *batch* (several
small whole chunks, one after the other in the same child) has several and a ``status`` file
that records each run's exit code. The worker and its children die with the coordinator
(``PR_SET_PDEATHSIG``, and end of input). Standard library only, Python 3.6 syntax.
"""

import ast
import ctypes
import gc
import importlib
import json
import os
import signal
import socket
import sys
import traceback
import types

PR_SET_PDEATHSIG = 1


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


def program_imports(path):
    """Module names the program imports anywhere (top level or in a function), in file order;
    a name starting with ``+`` may be a submodule (``from PACKAGE import NAME``).

    Importing in the worker what a piece would import anyway moves that cost out of every piece;
    a module that fails to import here is left for the piece to fail on (or not use)."""
    try:
        with open(path, "rb") as fh:
            tree = ast.parse(fh.read(), path)
    except (OSError, SyntaxError, ValueError):
        return []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, 0, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, 0, node.module))
            # ``from PIL import Image``: Image may be a submodule (marked: tried only when the
            # package imported; for an attribute the attempt just fails)
            found.extend((node.lineno, 1, "+" + node.module + "." + a.name) for a in node.names
                         if a.name != "*")
    names = []
    for _, _, n in sorted(found):
        if n not in names:
            names.append(n)
    return names


def preload(program):
    """Import what the program imports, and what ckjob.py imports at its top level (the module
    itself is the piece's own copy; what it imports lazily, for HTTP, a piece imports when it
    fetches), once for all pieces."""
    load_ckjob()
    done = []
    for name in program_imports(program):
        guess = name.startswith("+")
        name = name.lstrip("+")
        if name == "ckjob" or name.startswith("ckjob.") or name in sys.modules:
            continue  # the scratch folder's own copy; already there
        if guess and name.rpartition(".")[0] not in sys.modules:
            continue  # the package did not import
        try:
            importlib.import_module(name)
            done.append(name)
        except BaseException:  # an import that fails here is the child's business
            if guess:  # an attribute, maybe loaded lazily (concurrent.futures's executors)
                try:
                    package, _, attr = name.rpartition(".")
                    getattr(sys.modules[package], attr)
                except BaseException:
                    pass
    return done


# compiled once in the worker (inherited by every forked child): source bytes -> code object.
# A piece's file is used only when its bytes are exactly these; anything else is compiled anew.
CODE = {}
CKJOB = "ckjob.py"


def load_ckjob():
    """Load ckjob's top-level imports by importing the worker's own ckjob.py (from its cached
    bytecode: parsing the source for its imports and compiling it took ~11 ms per worker), and
    remember its code for the pieces; the module itself is dropped again (each piece gets the
    scratch folder's copy). When it cannot be imported, the pieces do the work."""
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, CKJOB)
    saved = sys.modules.pop("ckjob", None)
    sys.path.insert(0, here)
    try:
        module = importlib.import_module("ckjob")
        code = module.__loader__.get_code("ckjob")
        with open(path, "rb") as fh:
            src = fh.read()
        if code is not None and os.path.abspath(module.__file__) == path:
            CODE[src] = _renamed(code, CKJOB)
    except BaseException:  # a broken or missing ckjob is the pieces' business
        pass
    finally:
        sys.path.remove(here)
        sys.modules.pop("ckjob", None)
        if saved is not None:
            sys.modules["ckjob"] = saved


def _renamed(code, filename):
    """``code`` with every nested code object's file name set to ``filename`` (as compiling
    it under that name would give); unchanged before Python 3.8 (no ``replace``)."""
    if not hasattr(code, "replace"):
        return code
    consts = tuple(_renamed(c, filename) if isinstance(c, types.CodeType) else c
                   for c in code.co_consts)
    return code.replace(co_filename=filename, co_consts=consts)


def remember(path, filename):
    """Compile the file at ``path`` under ``filename`` (as a piece will name it) for later."""
    try:
        with open(path, "rb") as fh:
            src = fh.read()
        CODE[src] = compile(src, filename, "exec", dont_inherit=True)
    except (OSError, SyntaxError, ValueError):
        pass


def code_of(path):
    with open(path, "rb") as fh:
        src = fh.read()
    code = CODE.get(src)
    if code is None or code.co_filename != path:
        code = compile(src, path, "exec", dont_inherit=True)
    return code


def run_main(path):
    """``runpy.run_path(path, run_name="__main__")`` for a plain ``.py`` file, with the code
    compiled once per worker: a fresh ``__main__`` module each time."""
    code = code_of(path)
    main = types.ModuleType("__main__")
    main.__dict__.update(__file__=path, __cached__=None, __loader__=None, __package__="",
                         __spec__=None)
    saved = sys.modules.get("__main__")
    sys.modules["__main__"] = main
    try:
        exec(code, main.__dict__)
    finally:
        sys.modules["__main__"] = saved


def import_ckjob(scratch):
    """Import the scratch folder's ckjob.py as ``ckjob`` from the code compiled once, when its
    bytes are the ones the worker compiled (else the program's own import does the work)."""
    path = os.path.join(scratch, CKJOB)
    try:
        with open(path, "rb") as fh:
            code = CODE.get(fh.read())
    except OSError:
        return
    if code is None or "ckjob" in sys.modules:
        return
    mod = types.ModuleType("ckjob")
    mod.__dict__.update(__file__=path, __cached__=None)
    sys.modules["ckjob"] = mod
    try:
        exec(code, mod.__dict__)
    except BaseException:
        sys.modules.pop("ckjob", None)


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
                         % ((socket.gethostname(),) + tuple(sys.version_info[:3])
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


def child(req, proto_fds, parent):
    """In the forked child: become the piece's program, once per run. Never returns.

    A batch (several runs) appends ``OUT CODE`` to the file ``req["status"]`` after each run,
    so the coordinator knows which runs ended and how, even when a later run kills the process;
    the child's exit status is the first non-zero run's code (0 when all succeeded)."""
    code = 1
    try:
        os.setpgid(0, 0)
        die_with_parent(parent)
        for fd in proto_fds:
            os.close(fd)
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
        runs = req["runs"]
        status = None
        if req.get("status"):
            status = os.open(os.path.join(scratch, req["status"]),
                             os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        import_ckjob(scratch)
        first = 0
        for argv in runs:
            one = run_once(argv, scratch, req["env"])
            first = first or one
            if status is not None:
                out = argv[2] if len(argv) == 3 else "?"
                os.write(status, ("%s %d\n" % (out, one)).encode("utf-8", "replace"))
        code = first
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


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: ckworker.py PROGRAM\n")
        return 2
    parent = os.getppid()
    die_with_parent(parent)
    # the protocol moves off descriptors 0 and 1; they become /dev/null and stderr
    rfd, wfd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    reader = os.fdopen(rfd, "r", 1)
    writer = os.fdopen(wfd, "w", 1)

    def say(obj):
        writer.write(json.dumps(obj) + "\n")
        writer.flush()

    preloaded = preload(argv[1])
    remember(argv[1], "./" + os.path.basename(argv[1]))
    if hasattr(gc, "freeze"):  # 3.7+: the children's collections skip the preloaded objects,
        gc.freeze()            # so they do not copy the pages those live on (copy-on-write)
    say({"ready": True, "pid": os.getpid(), "preloaded": preloaded,
         "python": "%d.%d.%d" % tuple(sys.version_info[:3])})
    for line in reader:
        req = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            child(req, (rfd, wfd), parent=os.getppid())
        try:
            os.setpgid(pid, pid)  # also here: the coordinator may kill the group at once
        except OSError:
            pass
        say({"pid": pid})
        while True:
            try:
                _, status = os.waitpid(pid, 0)
                break
            except InterruptedError:
                continue
        if os.WIFSIGNALED(status):
            code = -os.WTERMSIG(status)
            after_signal(req, code)
        else:
            code = os.WEXITSTATUS(status)
        say({"exit": code})
    try:  # end of input: leave at once (no interpreter teardown of numpy & co.)
        writer.flush()
        sys.stderr.flush()
    finally:
        os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
