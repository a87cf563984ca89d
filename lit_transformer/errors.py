"""Bad input as one line: every user error ends as ``error: …`` on stderr and exit status 2,
never a traceback (a command's or a trial's).

A user error is a :class:`UserError`: the input is wrong, not the code. Each part raises its
own kind (``ConfigError`` here, ``DataError``, ``CheckpointError``, ``SequenceTooLongError``
beside the code that finds them); this module imports nothing of the package.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM


class Terminated(BaseException):  # noqa: N818 - named like KeyboardInterrupt, its sibling
    """SIGTERM, raised where a sweep process is (``sweep/stop.py``), so that it unwinds as on
    Ctrl-C and can tell the study about its trial before it goes."""


class UserError(ValueError):
    """The input is wrong: reported as one line, exit status 2."""


class ConfigError(UserError):
    """A configuration problem (a value, a file, a spec, an option)."""


def exit_code_of(command: Callable[[], int]) -> int:
    """``command()``'s exit status; a user error is one line and ``EXIT_USAGE``."""
    try:
        return command()
    except (UserError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated:
        print("error: stopped by SIGTERM", file=sys.stderr)
        return EXIT_TERMINATED
