"""What a persistent worker loads once for all its pieces (worker side, used by ckworker.py).

Owns the preloading: the modules a program imports (found in its source, at its top level or
inside functions: numpy, Pillow, OpenCV, ... then loaded once per worker, not once per piece),
what ckjob.py imports at its top level, and the code of the program and of ckjob.py compiled
once (a piece's file is used only when its bytes are exactly the ones compiled; anything else is
compiled anew). :func:`run_main` runs a file as a fresh ``__main__`` from that code.
Standard library only, Python 3.6 syntax.
"""

import ast
import importlib
import os
import sys
import types


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
