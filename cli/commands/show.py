"""``landscape show RESULT.h5`` and ``landscape plot RESULT.h5``: read back a result file."""

from __future__ import annotations

import json

import click


def _lines(tree: dict, prefix: str = "") -> list[str]:
    import numpy as np

    out = []
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.extend(_lines(value, name + "."))
        elif isinstance(value, list) and len(value) > 8:
            arr = np.asarray(value, dtype=object)
            out.append(f"{name}: [{len(arr)} values] {', '.join(map(str, arr[:5]))}, ...")
        else:
            out.append(f"{name}: {value}")
    return out


@click.command("show")
@click.argument("result", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="print the summary as one JSON object.")
def show(result: str, as_json: bool) -> None:
    """Print the summary of a result file.

    \b
    Example:
      landscape show demo_a_spectrum.h5
      landscape show demo_a_trace.h5 --json | jq .trace.estimate
    """
    from landscape.results import read_result, summary

    content = summary(read_result(result))
    if as_json:
        click.echo(json.dumps(content))
    else:
        click.echo("\n".join(_lines(content)))


@click.command("plot")
@click.argument("result", type=click.Path(dir_okay=False))
@click.option("-o", "--out", metavar="FILE.png", help="figure file (default: RESULT with .png).")
@click.option("--levels", type=click.IntRange(min=2), help="contour levels (surface).")
@click.option("--log", is_flag=True, default=None, help="log10 colour scale (surface).")
@click.option("--vmax", type=float, help="clip the loss above this value (surface).")
def plot(result: str, out: str | None, **options) -> None:
    """Redraw the plot of a result file from the numbers it holds.

    \b
    Example:
      landscape plot demo_a_spectrum.h5 -o spectrum.png
      landscape plot demo_a_surface.h5 --levels 30 --log --vmax 5
    """
    from landscape.plots import draw
    from landscape.results import read_result

    content = read_result(result)
    path = out or result.rsplit(".", 1)[0] + ".png"
    draw(content, path, **{k: v for k, v in options.items() if v is not None})
    click.echo(f"wrote {path}", err=True)

COMMANDS = [show, plot]
