"""The one boundary between a command and its exit status.

Every ``python -m predictor`` subcommand and ``scripts/canary.py`` run their work through
``run_command``: success is 0; a ``PredictorError`` prints its message on one line (``prog:
message`` on stderr, unless the command says it otherwise) and ends with the error's own
``exit_code`` (1: done and refused; 2: could not be done); anything else is a bug, never dressed
as bad input: its traceback is printed and the command ends with 70 (``EX_SOFTWARE``).
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable

from predictor.errors import EXIT_CANNOT_RUN, EXIT_REFUSED, PredictorError

EXIT_OK = 0
"""The work was done."""
EXIT_BUG = 70
"""An unexpected exception: a bug in this program (``EX_SOFTWARE`` of sysexits.h)."""

__all__ = ["EXIT_BUG", "EXIT_CANNOT_RUN", "EXIT_OK", "EXIT_REFUSED", "run_command"]


def run_command(
    prog: str,
    work: Callable[[], object],
    *,
    say: Callable[[PredictorError], None] | None = None,
) -> int:
    """Run ``work`` and return the command's exit status.

    Args:
        prog: how the command names itself in its one-line error (``predictor score``).
        work: the command's work; what it returns is ignored.
        say: how to tell the user of a refusal, when not ``prog: message`` on stderr.
    """
    try:
        work()
    except PredictorError as e:
        if say is not None:
            say(e)
        else:
            print(f"{prog}: {e}", file=sys.stderr)
        return e.exit_code
    except Exception:  # a bug: say so in full, never as bad input
        print(f"{prog}: unexpected error (a bug; please report it):", file=sys.stderr)
        traceback.print_exc()
        return EXIT_BUG
    return EXIT_OK
