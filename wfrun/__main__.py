"""`python -m wfrun` and the `wfrun` console script."""

import sys


def main() -> None:
    # `--version` is answered before typer and rich are imported: scripts call it often, and it
    # should cost little more than starting Python.
    if sys.argv[1:] == ["--version"]:
        from wfrun import __version__

        print(f"wfrun {__version__}")
        return
    from wfrun.collector import pause

    pause()  # until the command's long work begins (wfrun.collector)
    from wfrun.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
