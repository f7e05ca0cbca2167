"""The start-up baseline: a one-command click program (``python benchmarks/click_hello.py
--version``), what ``benchmarks.startup`` compares ``mofa`` with."""

import click


@click.command()
@click.version_option("1.0", prog_name="hello")
def main() -> None:
    click.echo("hello")


if __name__ == "__main__":
    main()
