"""What a persistent worker's runner puts back after each piece, and what a piece must leave as
it found it for the runner to take the next one (``ckworker.py`` runs the pieces).

Put back: ``sys.path``, ``sys.argv``, the streams and file descriptors 0-2 (to the worker's
log between pieces), the umask and the folder; modules the piece imported from its scratch
folder are dropped, and the piece's garbage is collected. Checked (:meth:`State.clean`): no
thread, child process (the runner is a subreaper, so orphans count), open file, signal handler
or timer is left, the niceness and the resource limits are unchanged, and the runner has not
grown by more than RUNNER_GROWTH bytes since its first piece. Standard library only, Python 3.6
syntax, Linux's ``/proc`` where available.
"""

import gc
import os
import signal
import sys

RUNNER_GROWTH = 256 << 20  # bytes a runner may grow by after its first piece, then replaced


class State(object):
    """What a runner restores after each piece (``sys.path``, ``sys.argv``, the streams and
    file descriptors 0-2, the umask, the folder; modules imported from the scratch folder are
    dropped), and what a piece must leave as it found it for the runner to take the next one
    (:meth:`clean`)."""

    def __init__(self):
        self.log = os.dup(2)  # the worker's log: where fds 1 and 2 point between pieces
        self.path = list(sys.path)
        self.argv = list(sys.argv)
        self.streams = (sys.stdin, sys.stdout, sys.stderr)
        self.umask = os.umask(0o022)
        os.umask(self.umask)
        self.modules = set(sys.modules)
        self.handlers = handlers()
        self.fds = count_fds()
        self.nice = os.nice(0)
        self.limits = limits()
        self.rss = None

    def restore(self, scratch):
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:
                pass
        sys.stdin, sys.stdout, sys.stderr = self.streams
        sys.path[:] = self.path
        sys.argv[:] = self.argv
        os.umask(self.umask)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.dup2(self.log, 1)
        os.dup2(self.log, 2)
        os.chdir("/")
        # modules a piece imported from its scratch folder belong to that piece
        prefix = os.path.join(os.path.abspath(scratch), "")
        for name in [n for n in sys.modules if n not in self.modules]:
            f = getattr(sys.modules.get(name), "__file__", None)
            if isinstance(f, str) and os.path.abspath(f).startswith(prefix):
                del sys.modules[name]
        sys.path_importer_cache.pop(scratch, None)
        gc.collect()  # the piece's __main__ and what it held (its buffers go back to malloc)

    def clean(self):
        """True when the piece left no thread, child process, open file, signal handler or
        timer behind, did not change the niceness or a resource limit, and the runner has not
        grown by more than RUNNER_GROWTH."""
        try:
            if len(os.listdir("/proc/self/task")) != 1:
                return False
        except OSError:
            if "threading" in sys.modules and sys.modules["threading"].active_count() > 1:
                return False
        while True:  # children (and orphaned descendants: the runner is a subreaper)
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                return False
        if signal.getitimer(signal.ITIMER_REAL)[0] or handlers() != self.handlers:
            return False
        if count_fds() > self.fds or os.nice(0) != self.nice or limits() != self.limits:
            return False
        rss = resident()
        if self.rss is None:
            self.rss = rss  # after the first piece: the runner's working size
        return rss - self.rss <= RUNNER_GROWTH


def handlers():
    found = {}
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM",
                 "SIGCHLD", "SIGPIPE", "SIGXCPU", "SIGXFSZ"):
        if hasattr(signal, name):
            found[name] = signal.getsignal(getattr(signal, name))
    return found


def limits():
    try:
        import resource
    except ImportError:
        return {}
    return {name: resource.getrlimit(getattr(resource, name)) for name in dir(resource)
            if name.startswith("RLIMIT_")}


def count_fds():
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def resident():
    """Bytes of this process in memory (0 when /proc is not there)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
