"""Fenced-code extraction from replies and ast-only contract checks, with feedback text for the next prompt."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*([^\n`]*)\n(.*?)^[ \t]*\1[ \t]*$", re.DOTALL | re.MULTILINE)
_PY_TAGS = {"python", "py", "python3"}


def extract_code(reply: str | None) -> str | None:
    """The first ```python block (py/python3 count too), else the first fenced block of any kind, else None."""
    if not reply:
        return None
    blocks = [
        (m.group(2).strip().split()[0].lower() if m.group(2).strip() else "", m.group(3))
        for m in _FENCE.finditer(reply)
    ]
    for tag, body in blocks:
        if tag in _PY_TAGS:
            return body
    return blocks[0][1] if blocks else None


@dataclass(frozen=True)
class ContractResult:
    """Outcome of the checks: ok, the failed check's name (None when ok), and a message."""

    ok: bool
    check: str | None = None  # "no_code" | "syntax" | "missing_function" | "signature"
    message: str = ""
    line: int | None = None


def _positional(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    a = fn.args
    return [p.arg for p in a.posonlyargs + a.args]


def check_contract(source: str | None, func_name: str, params: list[str]) -> ContractResult:
    """Parse (never run) `source`; require a top-level `def func_name` whose positional params are `params`.

    Extra positional params with defaults, *args, **kwargs and keyword-only params with defaults are allowed;
    a required keyword-only param is not (the caller would not pass it).
    """
    if source is None or not source.strip():
        return ContractResult(False, "no_code", "the reply contains no fenced Python code block")
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        where = f"line {e.lineno}" + (f", column {e.offset}" if e.offset else "")
        text = f": {e.text.strip()}" if e.text else ""
        return ContractResult(False, "syntax", f"syntax error at {where}: {e.msg}{text}", line=e.lineno)
    fns = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == func_name]
    want = f"def {func_name}({', '.join(params)})"
    if not fns:
        others = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        seen = f"; top-level functions found: {', '.join(others)}" if others else "; no top-level functions found"
        return ContractResult(False, "missing_function", f"no top-level function {func_name!r}, expected {want}{seen}")
    fn = fns[-1]  # the last definition is the one that counts at import
    if isinstance(fn, ast.AsyncFunctionDef):
        return ContractResult(False, "signature", f"{func_name} must be a plain def, not async def", line=fn.lineno)
    got = _positional(fn)
    n_defaults = len(fn.args.defaults)
    required = got[: len(got) - n_defaults]
    got_sig = f"def {func_name}({', '.join(got)})"
    if len(got) < len(params):
        why = f"takes {len(got)} positional parameter(s), expected {len(params)}"
    elif got[: len(params)] != list(params):
        why = "positional parameter names differ"
    elif len(required) > len(params):
        why = f"takes {len(required)} required positional parameter(s), expected {len(params)}"
    else:
        why = None
    if why:
        return ContractResult(False, "signature", f"{why}: found {got_sig}, expected {want}", line=fn.lineno)
    missing_kw = [k.arg for k, d in zip(fn.args.kwonlyargs, fn.args.kw_defaults) if d is None]
    if missing_kw:
        return ContractResult(
            False,
            "signature",
            f"required keyword-only parameter(s) {', '.join(missing_kw)}: expected {want}",
            line=fn.lineno,
        )
    return ContractResult(True, None, f"{want} found")


def feedback_text(result: ContractResult) -> str:
    """One paragraph for the feedback prompt: which check failed and what to fix."""
    if result.ok:
        return f"The code passed the contract checks ({result.message})."
    hints = {
        "no_code": "Reply with exactly one fenced ```python code block containing the complete code.",
        "syntax": "Fix the syntax error and reply with the complete corrected code in one ```python block.",
        "missing_function": "Define the required function at module top level with the exact name and parameters.",
        "signature": "Keep the function name and use exactly the required positional parameters, in order.",
    }
    return (
        f"Your previous code failed the '{result.check}' check: {result.message}. "
        f"{hints.get(result.check or '', 'Fix the problem and reply with the complete code.')}"
    )
