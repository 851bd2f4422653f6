"""``python -m swimpy``: the same command line as ``swimpy``."""

from swimpy.cli import main

if __name__ == "__main__":
    main()
