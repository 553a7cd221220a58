"""What the commands share: click settings, options written once, progress bars and the run
summary. Choices and defaults come from the library's constants."""

from __future__ import annotations

import time
from pathlib import Path

import click

CONTEXT = {"help_option_names": ["-h", "--help"], "show_default": True, "max_content_width": 100}


class OpenBars:
    """The progress bars still drawing: an error message must not land on their line, so the
    command line closes them before it prints one."""

    def __init__(self):
        self._bars: list = []

    def add(self, bar) -> None:
        self._bars.append(bar)

    def remove(self, bar) -> None:
        if bar in self._bars:
            self._bars.remove(bar)

    def __contains__(self, bar) -> bool:
        return bar in self._bars

    def close_all(self) -> None:
        for bar in self._bars:
            bar.close()
        self._bars.clear()


open_bars = OpenBars()
"""The one registry of this process's drawing bars."""


class LazyChoice(click.ParamType):
    """A choice among names known only when the command runs (the registry's recipes and
    exporters, plug-ins included): a broken plug-in is then a one-line error, not a failed import."""

    def __init__(self, names, what: str):
        self.names, self.what = names, what
        self.name = what

    def get_metavar(self, param, ctx=None) -> str:
        return "[" + "|".join(self.names()) + "]"

    def convert(self, value, param, ctx):
        names = list(self.names())
        if value not in names:
            self.fail(f"{value!r} is not a known {self.what}; choose from {', '.join(names)}", param, ctx)
        return value

    def shell_complete(self, ctx, param, incomplete):
        from click.shell_completion import CompletionItem

        return [CompletionItem(n) for n in self.names() if n.startswith(incomplete)]


def recipe_names() -> list[str]:
    """The registry's recipes, plug-ins included (imported when asked: see the class above)."""
    from sdfkit.recipes import recipes

    return list(recipes())


def export_formats() -> list[str]:
    """The registry's exporters, plug-ins included."""
    from sdfkit.builders.export import formats

    return list(formats())


def workers_option(f):
    return click.option(
        "--workers", type=click.IntRange(min=1), default=None, help="Worker processes  [default: all cores]"
    )(f)


split_option = click.option(
    "--split",
    "split_files",
    multiple=True,
    type=click.Path(path_type=Path),
    help="DeepSDF split file (JSON), or a shipped one by name: deepsdf/planes_train, metasdf/tables_test and the "
    "like (docs/shapenet.md); repeatable; only listed shapes are processed.",
)
synsets_option = click.option("--synsets", default=None, help="Comma-separated categories (synsets) to keep.")


def parse_synsets(text: str | None) -> tuple[str, ...] | None:
    """``--synsets a,b`` as a tuple (None: every category)."""
    return tuple(s.strip() for s in text.split(",") if s.strip()) if text else None


scheduler_option = click.option(
    "--scheduler",
    envvar="DASK_SCHEDULER_ADDRESS",
    default=None,
    metavar="ADDR",
    help="Run on a Dask cluster (tcp://host:port; env DASK_SCHEDULER_ADDRESS).",
)


def overwrite_option(help: str = "Replace an existing store made with other parameters."):
    return click.option("--overwrite", is_flag=True, help=help)


def device_option(help: str = "auto, cpu, cuda or cuda:N (auto: CUDA when present)."):
    return click.option("--device", default="auto", help=help)


def json_option(help: str = "Print a JSON object."):
    return click.option("--json", "as_json", is_flag=True, help=help)


test_steps_option = click.option(
    "--test-steps",
    type=click.IntRange(min=1),
    default=None,
    help="MetaSDF: inner-loop steps; DeepSDF/auto-decoders: latent iterations  [default: the run's]",
)


def progress_bar(description: str):
    from tqdm import tqdm

    bar = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, initial=done, desc=description, unit="shape", dynamic_ncols=True)
            open_bars.add(bar)
        elif bar in open_bars and done > bar.n:
            bar.update(done - bar.n)
        if done >= total and bar in open_bars:
            bar.close()
            open_bars.remove(bar)

    return update


def step_bar(description: str, total: int, time_limit: float | None, shown: bool = True):
    """A progress bar of training steps, and the ``progress(step, total, loss, rate)`` callback
    that moves it. Under a time limit its total is the steps the limit leaves at the rate so far
    (an honest ETA); otherwise the run's length (known in steps once the split is read)."""
    from tqdm import tqdm  # tqdm's import is 0.1 s: loaded by the commands that draw a bar

    bar = tqdm(total=total, desc=description, unit="step", dynamic_ncols=True, disable=not shown)
    open_bars.add(bar)
    clock = {"start": None, "first": 0}

    def progress(step, total, loss, rate):
        if clock["start"] is None:
            clock["start"], clock["first"] = time.perf_counter() - 1.0 / max(rate, 1e-9), step - 1
        if time_limit is not None:
            elapsed = time.perf_counter() - clock["start"]
            average = (step - clock["first"]) / max(elapsed, 1e-9)
            bar.total = int(min(total, step + average * max(0.0, time_limit * 60 - elapsed)))
        else:
            bar.total = total
        bar.n = step
        bar.set_postfix(loss=f"{loss:.4f}", steps_s=f"{rate:.2f}", refresh=False)
        bar.update(0)

    return bar, progress


def human_bytes(n: int | None) -> str:
    if n is None:
        return "unknown"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1000
    return f"{n:.1f} GB"


def print_summary(command: str, summary) -> None:
    if summary.state == "complete":
        click.echo(f"{summary.url} is already complete: nothing to do (see: sdfkit info {summary.url})")
        return
    rate = summary.computed / summary.seconds if summary.seconds > 0 else 0.0
    verb = {"resumed": "resumed", "appended": "appended to"}.get(summary.state, "wrote")
    click.echo(
        f"{command}: {verb} {summary.url} in {summary.seconds:.1f} s; "
        f"{summary.computed} shapes computed ({rate:.3g} shapes/s)"
    )
    if summary.state == "appended":
        click.echo(
            f"  the source has {summary.appended} new shapes: added after the store's existing rows, which were "
            "left as they were"
        )
    skipped = any(counts.get("skipped") for counts in summary.per_split.values())
    click.echo(f"  {'split':<8}{'ok':>8}{'failed':>8}" + (f"{'skipped':>9}" if skipped else ""))
    for split, counts in summary.per_split.items():
        extra = f"{counts.get('skipped', 0):>9}" if skipped else ""
        click.echo(f"  {split:<8}{counts['ok']:>8}{counts['failed']:>8}{extra}")
    click.echo(f"  size on disk: {human_bytes(summary.bytes)}")
    if summary.failures:
        click.echo(f"  {len(summary.failures)} failed shapes, first reasons:")
        for shape_id, error in summary.failures[:5]:
            click.echo(f"    {shape_id}: {error}")
    if summary.skipped:
        click.echo(f"  {len(summary.skipped)} shapes skipped on purpose, first reasons:")
        for shape_id, reason in summary.skipped[:5]:
            click.echo(f"    {shape_id}: {reason.removeprefix('skipped: ')}")
    if summary.missing:
        first = ", ".join(summary.missing[:5])
        click.echo(
            f"  {len(summary.missing)} shapes listed in the split files are not in the source and were skipped "
            f"(first: {first}); all of them: sdfkit info {summary.url} --json (source.missing_ids)"
        )


def run_build(command: str, build, *args, workers: int | None = None, **kwargs):
    """Run a store-building library function (``prepare_mnist``, ``prepare_shapenet``,
    ``prepare_renders``, ``prepare_watertight``) as ``command``: ``workers`` defaults to every
    core, a progress bar shows the shapes, and the run's summary is printed and returned."""
    summary = build(*args, workers=workers or default_workers(), progress=progress_bar(command), **kwargs)
    print_summary(command, summary)
    return summary


def default_workers() -> int:
    from sdfkit.pipeline.runners import default_workers

    return default_workers()
