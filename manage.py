#!/usr/bin/env python
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kasparro.settings")
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except Exception as exc:
        from kasparro.database import connect_failure_line

        # A database that cannot be reached is one line saying what to run, not a traceback.
        line = connect_failure_line(exc)
        if line is None:
            raise
        sys.stderr.write(f"Error: {line}\n")
        sys.exit(1)


if __name__ == "__main__":
    main()
