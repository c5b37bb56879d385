"""``python -m deviceflow``: the same as the ``deviceflow`` command."""

from deviceflow.cli.main import main

if __name__ == "__main__":
    main()
