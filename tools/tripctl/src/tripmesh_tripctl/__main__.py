"""`tripctl`: the operator's CLI."""

from __future__ import annotations


def main() -> None:
    from tripmesh_tripctl.cli import cli

    cli()


if __name__ == "__main__":
    main()
