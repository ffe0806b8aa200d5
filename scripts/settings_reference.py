"""Write, or check, the settings table of docs/settings.md from the ``Settings`` model.

python scripts/settings_reference.py          # rewrite the table between the markers
python scripts/settings_reference.py --check  # exit 1 when the committed table has drifted
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from predictor.cli.flags import settings_reference  # noqa: E402
from predictor.exits import EXIT_OK, EXIT_REFUSED  # noqa: E402

PAGE = Path(__file__).resolve().parent.parent / "docs" / "settings.md"
START, END = "<!-- settings-reference:start -->", "<!-- settings-reference:end -->"


def with_table(page: str) -> str:
    """``page`` with the generated table between its markers."""
    head, _, rest = page.partition(START)
    _, _, tail = rest.partition(END)
    return f"{head}{START}\n{settings_reference()}{END}{tail}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check; write nothing")
    args = parser.parse_args()
    page = PAGE.read_text()
    if START not in page or END not in page:
        print(f"{PAGE}: the markers {START} and {END} are missing", file=sys.stderr)
        return EXIT_REFUSED
    wanted = with_table(page)
    if args.check:
        if wanted != page:
            print(
                f"{PAGE} is out of date with predictor/settings.py; "
                "run: python scripts/settings_reference.py",
                file=sys.stderr,
            )
            return EXIT_REFUSED
        return EXIT_OK
    PAGE.write_text(wanted)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
