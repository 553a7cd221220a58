"""The ``sdfkit`` command line: parses arguments, calls the library, prints.

One module per area (``prepare``: data preparation; ``training``: training and evaluation;
``builders``: what builds from a store or meshes; ``stores``: what looks at a store) and one of shared options (``options``). User errors
(:class:`sdfkit.errors.SdfkitError`) print one line on stderr and exit 1, with no traceback;
Ctrl-C exits 130 and leaves the store resumable.
"""

from __future__ import annotations

import functools
import json
import sys

import click

from sdfkit._version import __version__
from sdfkit.errors import SdfkitError, describe_os_error

from . import builders, prepare, stores, training
from .options import CONTEXT, json_option, open_bars


class _Group(click.Group):
    def invoke(self, ctx):
        import logging

        # zarr writes through an asyncio loop of its own: when one write fails (a full disk), the
        # writes running beside it fail too and asyncio logs each with a traceback; the failure
        # itself reaches the user as the one line below
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
        try:
            return super().invoke(ctx)
        except SdfkitError as exc:
            open_bars.close_all()
            click.secho(f"error: {exc}", err=True, fg="red")
            ctx.exit(1)
        except BrokenPipeError:  # `sdfkit info ... | head`: the reader has what it wanted
            ctx.exit(1)
        except OSError as exc:  # a read-only folder, a full disk, a file in the way: any command
            open_bars.close_all()
            click.secho(f"error: {describe_os_error(exc)}", err=True, fg="red")
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("\ninterrupted: run the same command again to continue where it stopped", err=True)
            ctx.exit(130)


@click.group(cls=_Group, context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="sdfkit")
def main():
    """sdfkit: signed distance function datasets for neural implicit shape models.

    \b
    Quick start:
      sdfkit prepare-mnist -o mnist.zarr        # the bundled digits -> 2D SDFs
      sdfkit show mnist.zarr --sheet 16 -o preview.png
      sdfkit info mnist.zarr
    """


@main.command("env", context_settings=CONTEXT)
@json_option()
def env_command(as_json):
    """Print versions of sdfkit, Python and its libraries, and the GPU: paste it into bug reports.

    \b
    Example:
      sdfkit env
    """
    from sdfkit.env import environment

    info = environment()
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    width = max(map(len, info))
    for key, value in info.items():
        click.echo(f"{key:<{width}}  {value}")


OUTPUT_PARAMETERS = ("output", "run_dir", "out_dir", "store")
"""A command's parameters that name what it writes, first found first: the file an error names
when the system's error carries none (zarr, PIL and zipfile raise such)."""


def _naming_output(callback):
    @functools.wraps(callback)
    def run(*args, **kwargs):
        try:
            return callback(*args, **kwargs)
        except OSError as exc:
            if exc.filename is None:
                exc.filename = next((str(kwargs[k]) for k in OUTPUT_PARAMETERS if kwargs.get(k)), None)
            raise

    return run


for _command in (*prepare.COMMANDS, *training.COMMANDS, *builders.COMMANDS, *stores.COMMANDS):
    _command.callback = _naming_output(_command.callback)
    main.add_command(_command)


if __name__ == "__main__":
    sys.exit(main())
