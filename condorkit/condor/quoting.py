"""Pure quoting functions for the HTCondor submit language and the POSIX shell.

Owns every rule for turning an arbitrary string into text that cannot change the meaning of a
submit file or a shell command. Templates never quote by themselves; they receive values that
went through these functions. Each function either returns a safe rendering or raises
:class:`~condorkit.errors.QuotingError` saying why the value cannot be represented.

Submit-language facts used here (HTCondor manual, "submit description file"):
- a value is the rest of its line, with surrounding white space removed; a newline ends it;
- ``$(NAME)`` expands a macro everywhere; a literal ``$`` is written ``$(DOLLAR)``;
- the new ``arguments`` syntax is the whole list in double quotes; arguments are separated by
  spaces; an argument containing spaces is put in single quotes; inside, ``''`` is a literal
  single quote and ``""`` a literal double quote;
- file lists (``transfer_input_files``) are separated by commas.
"""

from __future__ import annotations

import re

from condorkit.errors import QuotingError

_LINE_BREAKS = re.compile(r"[\r\n\x00\x0b\x0c\u0085\u2028\u2029]")
_WS = " \t"


def _no_breaks(value: str, what: str) -> None:
    m = _LINE_BREAKS.search(value)
    if m:
        raise QuotingError(
            f"{what} {value!r} contains a line break or NUL ({m.group()!r}); a submit file "
            "cannot hold it", "remove the line break from the value")


def _no_continuation(rendered: str, what: str) -> str:
    if rendered.endswith("\\"):
        raise QuotingError(f"{what} {rendered!r} ends with a backslash, which the submit "
                           "language reads as a line continuation", "remove the final backslash")
    return rendered


def escape_dollars(value: str, keep: tuple[str, ...] = ()) -> str:
    """Make every ``$`` literal for the submit language, except the macros named in ``keep``.

    ``keep=("start",)`` leaves each exact ``$(start)`` in place so it expands per job.
    """
    if "$$" in value or "$(DOLLAR)" in value:
        # HTCondor re-reads the expansion of $(DOLLAR): `$$` would become a match-time
        # reference and `$(DOLLAR)(DOLLAR)` a single `$`, so these cannot be written literally.
        raise QuotingError(f"{value!r} contains `$$` or `$(DOLLAR)`, which a submit file "
                           "cannot hold literally",
                           "rename the file or folder, or change the value")
    if not keep:
        out = value.replace("$", "$(DOLLAR)")
    else:
        pattern = "|".join(re.escape(f"$({k})") for k in keep)
        out = "".join(p if re.fullmatch(pattern, p) else p.replace("$", "$(DOLLAR)")
                      for p in re.split(f"({pattern})", value))
    return out


def submit_value(value: str, what: str = "value", keep: tuple[str, ...] = ()) -> str:
    """Render a plain submit-file value (right-hand side of ``key = value``) literally."""
    value = str(value)
    _no_breaks(value, what)
    if value != value.strip(_WS):
        raise QuotingError(f"{what} {value!r} starts or ends with white space, which the "
                           "submit language strips", "remove the surrounding spaces")
    if value == "":
        raise QuotingError(f"{what} is empty", "give it a value")
    return _no_continuation(escape_dollars(value, keep), what)


def submit_args(args: list[str] | tuple[str, ...], keep: tuple[str, ...] = ()) -> str:
    """Render an argument vector in the new (double-quoted) ``arguments`` syntax."""
    out = []
    for a in args:
        a = str(a)
        _no_breaks(a, "argument")
        body = a.replace('"', '""')
        if body == "" or any(c in body for c in " \t'"):
            body = "'" + body.replace("'", "''") + "'"
        out.append(escape_dollars(body, keep))
    return '"' + " ".join(out) + '"'


def parse_submit_args(text: str) -> list[str]:
    """Parse an expanded new-syntax ``arguments`` value back into an argument vector.

    The inverse of :func:`submit_args` after macro expansion (``$(DOLLAR)`` already ``$``).
    """
    text = text.strip()
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        raise QuotingError(f"arguments {text!r} are not in the double-quoted syntax",
                           'write arguments = "arg1 arg2"')
    body = text[1:-1]
    args: list[str] = []
    cur: list[str] = []
    have = False
    i, n = 0, len(body)
    while i < n:
        c = body[i]
        if c == '"':
            if i + 1 < n and body[i + 1] == '"':
                cur.append('"')
                have = True
                i += 2
                continue
            raise QuotingError(f"lone double quote in arguments {text!r}", 'write "" for "')
        if c == "'":
            have = True
            i += 1
            while True:
                if i >= n:
                    raise QuotingError(f"unterminated single quote in {text!r}", "close it")
                if body[i] == "'":
                    if i + 1 < n and body[i + 1] == "'":
                        cur.append("'")
                        i += 2
                        continue
                    i += 1
                    break
                if body[i] == '"' and i + 1 < n and body[i + 1] == '"':
                    cur.append('"')
                    i += 2
                    continue
                cur.append(body[i])
                i += 1
            continue
        if c in _WS:
            if have:
                args.append("".join(cur))
                cur, have = [], False
            i += 1
            continue
        cur.append(c)
        have = True
        i += 1
    if have:
        args.append("".join(cur))
    return args


def submit_file_list(paths: list[str] | tuple[str, ...], what: str = "file list",
                     keep: tuple[str, ...] = ()) -> str:
    """Render a comma-separated file list (``transfer_input_files`` and friends)."""
    rendered = []
    for p in paths:
        p = str(p)
        _no_breaks(p, what)
        if p == "" or any(c in p for c in ", \t\"'"):
            raise QuotingError(
                f"file name {p!r} in {what} contains a comma, a space or a quote, which HTCondor "
                "file lists cannot carry", "rename the file (letters, digits, - _ . / only)")
        rendered.append(escape_dollars(p, keep))
    return _no_continuation(", ".join(rendered), what)


def submit_expr(expr: str, what: str = "expression") -> str:
    """Check a ClassAd expression (``requirements``) fits on one line; ``$`` is kept literal."""
    _no_breaks(str(expr), what)
    expr = str(expr).strip(_WS)
    if expr.count('"') % 2:
        raise QuotingError(f"{what} {expr!r} has an unbalanced double quote", "balance it")
    return _no_continuation(escape_dollars(expr), what)


# ----------------------------------------------------------------------------- DAGMan input files
# DAG-file facts used here (HTCondor manual, "DAGMan workflows"): a line is a keyword and
# white-space separated fields, so a node name or a file name cannot hold white space; node names
# PARENT, CHILD and ALL_NODES are reserved and `+` separates splice names; a VARS value is written
# in double quotes, where `\"` is a double quote and `\\` a backslash. A VARS value becomes a
# submit-file macro, so it must already be in submit syntax (see :func:`submit_arg`).

_DAG_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}$")
_DAG_RESERVED = {"PARENT", "CHILD", "ALL_NODES"}


def dag_name(value: str, what: str = "DAG node name") -> str:
    """Check a DAG node name: letters, digits, ``_ . -`` (not first), not a DAG keyword."""
    value = str(value)
    if not _DAG_NAME.match(value):
        raise QuotingError(f"{what} {value!r} is not a safe DAG node name",
                           "use 1-200 letters, digits, '_', '.' or '-' (not first)")
    if value.upper() in _DAG_RESERVED:
        raise QuotingError(f"{what} {value!r} is a reserved DAG keyword", "pick another name")
    return value


def dag_path(value: str, what: str = "path") -> str:
    """Check a file name written as a field of a DAG file line (no white space, no quotes)."""
    value = str(value)
    _no_breaks(value, what)
    if value == "" or any(c in value for c in " \t\"'"):
        raise QuotingError(f"{what} {value!r} contains white space or a quote, which a DAG file "
                           "line cannot carry", "move the folder to a path without spaces")
    return value


def dag_vars_value(value: str, what: str = "VARS value") -> str:
    """Render a VARS value: the double-quoted DAG string whose content is ``value`` verbatim."""
    value = str(value)
    _no_breaks(value, what)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def submit_arg(value: str) -> str:
    """One argument in the new ``arguments`` syntax, without the surrounding double quotes.

    For a value spliced into ``arguments = "... $(macro)"`` through a macro (a DAG VARS value).
    """
    return submit_args([value])[1:-1]
