"""The report of an experiment, written from its runs' logs: ``<folder>/<name>.md`` plus
``<folder>/<name>/*.png`` and ``results.json`` (the table's numbers, for scripts). ``depthlab experiment``
writes it beside the runs by default; the committed reports are ``docs/experiments/`` (``--update-docs``).

Everything in it is read back from the logs (:mod:`depthlab.experiments.logs`); the conclusion is
written from those numbers. The ``Notes`` section is the reader's: text between its markers is
kept when the report is written again.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import platform
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from depthlab.experiments.logs import Scalars, last_value, read_event_scalars, read_scalars
from depthlab.experiments.runner import RunRecord, run_dir, shell_line
from depthlab.experiments.spec import Experiment, resolve_callable

NOTES_START = "<!-- notes: kept when the report is written again -->"
NOTES_END = "<!-- end of notes -->"


@dataclass
class Run:
    variant: str
    seed: int
    record: RunRecord
    train: Scalars  # the fit's (or script's) logs
    evaluations: dict[str, Scalars] = field(default_factory=dict)

    def metric(self, evaluation: str | None, metric: str) -> float | None:
        if evaluation is None:  # script experiments: the last value of the tag itself
            return last_value(self.train, metric)
        return last_value(self.evaluations.get(evaluation, {}), f"test/{metric}")


@dataclass
class Results:
    exp: Experiment
    scale: str
    seeds: list[int]
    runs: dict[str, list[Run]]  # variant -> runs (seed order)
    extras: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    extras_wall_s: float = 0.0
    missing: list[str] = field(default_factory=list)  # runs not finished (partial report): "variant seed S: why"

    @property
    def evaluation_names(self) -> list[str | None]:
        return [e.name for e in self.exp.evaluations] if self.exp.kind == "fit" else [None]

    def values(self, variant: str, metric: str, evaluation: str | None = None) -> list[float]:
        if evaluation is None and self.exp.kind == "fit":
            evaluation = self.exp.evaluations[0].name
        vals = [r.metric(evaluation, metric) for r in self.runs[variant]]
        return [v for v in vals if v is not None]

    def summary(self, variant: str, metric: str, evaluation: str | None = None) -> tuple[float, float, int]:
        """(mean, sample standard deviation (0 for one seed), number of seeds)."""
        vals = self.values(variant, metric, evaluation)
        if not vals:
            return math.nan, math.nan, 0
        return statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0, len(vals)

    def series(self, variant: str, tag: str) -> list[list[tuple[int, float]]]:
        return [r.train[tag] for r in self.runs[variant] if tag in r.train]

    def label(self, variant: str) -> str:
        return self.exp.variant(variant).label or variant


def _why_missing(folder: Path) -> str:
    """What a run folder without ``run.json`` holds: not started, or stopped (resumable) or failed."""
    from depthlab.experiments.runner import JOB_LOG, PENDING_FILE

    log = f"; log {folder / JOB_LOG}" if (folder / JOB_LOG).is_file() else ""
    if not folder.is_dir():
        return "not started"
    if (folder / PENDING_FILE).is_file() and next(folder.glob("*/version_*/checkpoints/last.ckpt"), None):
        return f"unfinished, its last.ckpt is resumed by the next 'run'{log}"
    return f"unfinished or failed{log}"


def collect(exp: Experiment, scale: str, seeds: list[int], out: Path, *, partial: bool = False) -> Results:
    """Read every run's logs (``run.json`` marks a finished run). A missing one is an error, or with
    ``partial`` listed in :attr:`Results.missing` (and a variant without any finished run left out)."""
    from depthlab.experiments.runner import ExperimentError

    runs: dict[str, list[Run]] = {}
    missing: list[str] = []
    for variant in exp.variants_at(scale):
        runs[variant.name] = []
        for seed in seeds:
            folder = run_dir(out, scale, variant.name, seed)
            record = RunRecord.load(folder)
            if record is None and partial:
                missing.append(f"{variant.name} seed {seed}: {_why_missing(folder)}")
                continue
            if record is None:
                raise ExperimentError(f"experiment {exp.name}: {variant.name} seed {seed} has not run at scale {scale} "
                                      f"(no {folder}/run.json): 'depthlab experiment run {exp.name} --scale {scale}'")
            if exp.kind == "script":
                train = read_scalars(folder)
            else:
                fit_dirs = sorted(folder.glob("*/version_*"))
                train = read_event_scalars(fit_dirs[-1]) if fit_dirs else {}
            evaluations = {name: read_event_scalars(folder / "eval" / name) for name in record.evaluations}
            runs[variant.name].append(Run(variant.name, seed, record, train, evaluations))
    runs = {name: found for name, found in runs.items() if found}
    if not runs:
        raise ExperimentError(f"experiment {exp.name}: no run has finished at scale {scale} under {out} "
                              f"(no run.json): 'depthlab experiment run {exp.name} --scale {scale}'")
    results = Results(exp, scale, list(seeds), runs, missing=missing)
    for extra in exp.extras:
        path = out / scale / "extras" / f"{extra.name}.csv"
        if path.is_file():
            with open(path, newline="") as f:
                results.extras[extra.name] = list(csv.DictReader(f))
            timing = path.with_suffix(".json")
            if timing.is_file():
                results.extras_wall_s += json.loads(timing.read_text()).get("wall_s", 0.0)
    return results


# --- numbers to words ---------------------------------------------------------------------------------


def fmt(value: float, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if float(value).is_integer() and abs(value) >= 10:  # counts, step numbers
        return str(int(value))
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e4):
        return f"{value:.3e}"
    return f"{value:.{digits}f}"


def ranking(results: Results, metric: str, evaluation: str | None = None, variants: list[str] | None = None) -> list[tuple[str, float, float, int]]:
    """Variants best first by ``metric`` (mean over seeds): ``[(variant, mean, std, n)]``."""
    higher = results.exp.metric_higher_is_better(metric)
    rows = [(v, *results.summary(v, metric, evaluation)) for v in (variants or list(results.runs))]
    rows = [r for r in rows if r[3] > 0]
    return sorted(rows, key=lambda r: -r[1] if higher else r[1])


def compare(results: Results, a: str, b: str, metric: str, evaluation: str | None = None) -> str:
    """One sentence: which of two variants is better on ``metric`` and whether the gap exceeds the seed spread."""
    ma, sa, na = results.summary(a, metric, evaluation)
    mb, sb, nb = results.summary(b, metric, evaluation)
    if na == 0 or nb == 0:
        return f"{metric}: no numbers for {a if na == 0 else b}."
    higher = results.exp.metric_higher_is_better(metric)
    better, worse = (a, b) if (ma > mb) == higher else (b, a)
    gap = abs(ma - mb)
    spread = max(sa, sb)
    if min(na, nb) < 2:
        verdict = "with one seed the spread is unknown"
    elif gap > 2 * spread:
        verdict = f"more than twice the larger seed spread ({fmt(spread)}): a clear difference"
    elif gap > spread:
        verdict = f"larger than the seed spread ({fmt(spread)}), but less than twice it: a weak difference"
    else:
        verdict = f"within the seed spread ({fmt(spread)}): no difference at this scale"
    if min(na, nb) >= 2 and gap <= spread:
        return (f"{results.label(a)} and {results.label(b)} do not differ on {metric} ({fmt(ma)} vs {fmt(mb)}; gap {fmt(gap)}, "
                f"{verdict}).")
    return (f"{results.label(better)} is better than {results.label(worse)} on {metric} "
            f"({fmt(results.summary(better, metric, evaluation)[0])} vs {fmt(results.summary(worse, metric, evaluation)[0])}; "
            f"gap {fmt(gap)}, {verdict}).")


def generic_conclusion(results: Results) -> list[str]:
    exp = results.exp
    paragraphs = []
    for evaluation in results.evaluation_names:
        ranked = ranking(results, exp.primary, evaluation)
        if len(ranked) < 2:
            continue
        where = f" ({_evaluation_label(exp, evaluation)})" if evaluation is not None and len(results.evaluation_names) > 1 else ""
        text = (f"By {exp.primary}{where}, the order is " + ", ".join(f"{results.label(v)} {fmt(m)}" for v, m, _, _ in ranked)
                + ". " + compare(results, ranked[0][0], ranked[1][0], exp.primary, evaluation))
        best_by_metric = {}
        for metric in exp.metrics:
            top = ranking(results, metric, evaluation)
            if top:
                best_by_metric.setdefault(results.label(top[0][0]), []).append(metric)
        if len(best_by_metric) > 1:
            text += " Best per metric: " + "; ".join(f"{v}: {', '.join(ms)}" for v, ms in best_by_metric.items()) + "."
        paragraphs.append(text)
    return paragraphs


def _evaluation_label(exp: Experiment, name: str | None) -> str:
    for e in exp.evaluations:
        if e.name == name:
            return e.label or e.name
    return name or ""


# --- plots --------------------------------------------------------------------------------------------


def _matplotlib():
    try:
        import matplotlib
    except ImportError:
        from depthlab.errors import ConfigError

        raise ConfigError("depthlab experiment: the plots need matplotlib: pip install 'depthlab[plots]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@contextlib.contextmanager
def figure(path: Path, size: tuple[float, float] = (6.4, 4.0)):
    """``with figure(path) as (fig, ax): ...``: one matplotlib figure, laid out and written to ``path``
    as PNG on exit (and closed either way)."""
    plt = _matplotlib()
    fig, ax = plt.subplots(figsize=size, dpi=100)
    try:
        yield fig, ax
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)


def mean_curve(curves: list[list[tuple[int, float]]]) -> tuple[list[int], list[float], list[float], list[float]]:
    """Steps every seed logged, the mean over seeds there, and the min and max."""
    if not curves:
        return [], [], [], []
    steps = sorted(set.intersection(*(set(s for s, _ in c) for c in curves)))
    tables = [dict(c) for c in curves]
    values = [[t[s] for t in tables] for s in steps]
    return steps, [statistics.fmean(v) for v in values], [min(v) for v in values], [max(v) for v in values]


def plot_tag(results: Results, tag: str, path: Path, title: str = "", log_y: bool = False, ylabel: str = "",
             variants: list[str] | None = None) -> bool:
    """One line per variant (mean over seeds, min-max band); False, and no file, when no variant logged ``tag``."""
    curves = {v: mean_curve(results.series(v, tag)) for v in variants or list(results.runs) if v in results.runs}
    curves = {v: c for v, c in curves.items() if c[0]}
    if not curves:
        return False
    with figure(path) as (fig, ax):
        for variant, (steps, mean, lo, hi) in curves.items():
            (line,) = ax.plot(steps, mean, label=results.label(variant), linewidth=1.4)
            if len(results.runs[variant]) > 1:
                ax.fill_between(steps, lo, hi, color=line.get_color(), alpha=0.18, linewidth=0)
        if log_y:
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel or tag)
        n = len(results.seeds)
        ax.set_title(f"{title or tag}" + (f" (mean of {n} seeds, band: min-max)" if n > 1 else ""), fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return True


def plot_file(tag: str) -> str:
    return tag.replace("/", "_") + ".png"


# --- the report ---------------------------------------------------------------------------------------


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    parts = []
    for package in ("depthlab", "torch", "lightning", "timm", "torchmetrics"):
        try:
            parts.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            pass
    return ", ".join(parts)


def _machine() -> str:
    import os

    import torch

    text = f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores"
    if torch.cuda.is_available():
        text += f", {torch.cuda.get_device_name(0)}"
    else:
        text += ", no GPU"
    return text


def _keep_notes(path: Path) -> str:
    if path.is_file():
        text = path.read_text()
        if NOTES_START in text and NOTES_END in text:
            return text[text.index(NOTES_START) + len(NOTES_START):text.index(NOTES_END)].strip("\n")
    return ""


def write_report(results: Results, docs: str | Path) -> Path:
    """Write ``<docs>/<name>.md``, its PNGs and ``results.json`` (in ``<docs>/<name>/``); returns the
    Markdown file's path. A Notes section already in ``<docs>/<name>.md`` is kept."""
    exp = results.exp
    docs = Path(docs)
    assets = docs / exp.name
    assets.mkdir(parents=True, exist_ok=True)
    report = docs / f"{exp.name}.md"
    notes = _keep_notes(report)

    figures: list[tuple[str, str]] = []
    for number, plot in enumerate(exp.plots, 1):
        name = f"{number}_{plot_file(plot.tag)}"
        if plot_tag(results, plot.tag, assets / name, plot.title, plot.log_y, plot.ylabel, list(plot.variants) or None):
            figures.append((name, plot.title or plot.tag))
    analysis_paragraphs: list[str] = []
    if exp.analysis:
        fn = resolve_callable(exp.analysis, f"experiment {exp.name}: analysis")
        produced = fn(results, assets)
        analysis_paragraphs = list(produced.get("paragraphs", []))
        figures += list(produced.get("figures", []))

    numbers: dict[str, Any] = {"experiment": exp.name, "scale": results.scale, "seeds": results.seeds, "tables": {}}
    lines = [f"# {exp.title}", "",
             f"*Written by `depthlab experiment run {exp.name} --scale {results.scale}` from the runs' logs; "
             f"edit only the Notes section (kept when the report is written again).*", ""]
    if results.missing:
        total = sum(len(r) for r in results.runs.values()) + len(results.missing)
        lines += [f"**Partial report** (`depthlab experiment report`): {len(results.missing)} of {total} runs have not "
                  "finished; every number below is from the finished runs only. Missing:", ""]
        lines += [f"- {m}" for m in results.missing] + [""]
        numbers["missing"] = list(results.missing)
    lines += ["## Question", "", exp.question, ""]
    if exp.claims:
        lines += ["## What the papers say", ""]
        lines += [f"- {c.get('text', '').strip()} ({c.get('source', 'source not given')})" for c in exp.claims] + [""]

    walls = [r.record.wall_s + r.record.eval_wall_s for runs in results.runs.values() for r in runs]
    total = sum(walls) + results.extras_wall_s
    scale = exp.scale(results.scale)
    lines += ["## Setup", ""]
    if exp.setup:
        lines += [exp.setup, ""]
    lines += [f"- Scale `{results.scale}`" + (f": {scale.note}" if scale.note else ""),
              f"- Seeds {', '.join(map(str, results.seeds))}" + (" (`seed_everything`: network initialisation and batch order; "
                                                                  "the data are the same scenes)" if exp.kind == "fit" else ""),
              f"- Machine: {_machine()}",
              f"- Versions: {_versions()}",
              f"- Wall time: {_duration(total)} in all, {_duration(statistics.fmean(walls) if walls else 0)} per run "
              f"(training and evaluation) on average",
              f"- Configs: `configs/experiments/{exp.name}/`; the run of one variant, e.g.:", "",
              "  ```", f"  {_portable(shell_line(next(iter(results.runs.values()))[0].record.command))}", "  ```", ""]

    lines += ["## Results", ""]
    for evaluation in results.evaluation_names:
        key = evaluation or "final"
        if evaluation is not None and len(results.evaluation_names) > 1:
            lines += [f"**{_evaluation_label(exp, evaluation)}**", ""]
        lines += ["| variant | " + " | ".join(exp.metrics) + " |", "|---" * (len(exp.metrics) + 1) + "|"]
        table: dict[str, dict[str, list[float]]] = {}
        best = {}  # metric -> the variant to set in bold (only when there is something to compare)
        for metric in exp.metrics:
            ranked = ranking(results, metric, evaluation)
            if len(ranked) > 1:
                best[metric] = ranked[0][0]
        for variant in results.runs:
            cells, table[variant] = [], {}
            for metric in exp.metrics:
                mean, std, n = results.summary(variant, metric, evaluation)
                table[variant][metric] = [mean, std, n]
                mark = best.get(metric) == variant
                cell = fmt(mean) + (f" ± {fmt(std)}" if n > 1 else "")
                cells.append(f"**{cell}**" if mark else cell)
            lines.append(f"| {results.label(variant)} | " + " | ".join(cells) + " |")
        numbers["tables"][key] = table
        spread = "mean ± sample standard deviation over the seeds" if len(results.seeds) > 1 else "one seed"
        lines += ["", f"{spread}; best per column in bold"
                  + ("; metrics of the final checkpoint (`last.ckpt`) on the test split." if evaluation else "."), ""]
    for extra in exp.extras:
        rows = results.extras.get(extra.name)
        if rows:
            cols = list(rows[0])
            lines += [f"**{extra.title or extra.name}**", "", "| " + " | ".join(cols) + " |", "|---" * len(cols) + "|"]
            lines += ["| " + " | ".join(_cell(r[c]) for c in cols) + " |" for r in rows] + [""]
            numbers["tables"][extra.name] = rows
    for name, caption in figures:
        lines += [f"![{caption}]({exp.name}/{name})", ""]

    lines += ["## Conclusion", "", "*Written from the numbers above by the command.*", ""]
    for paragraph in [*generic_conclusion(results), *analysis_paragraphs]:
        lines += [paragraph, ""]
    lines += ["## Notes", "", NOTES_START, notes, NOTES_END, ""]
    report.write_text("\n".join(lines))
    (assets / "results.json").write_text(json.dumps(numbers, indent=1, default=float))
    return report


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 120 else f"{seconds:.1f} s" if seconds >= 1 else f"{seconds * 1000:.0f} ms"


def _cell(value: str) -> str:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return value.strip()  # written as an integer (a seed, a count): kept so, not 0.0000
    try:
        return fmt(float(value))
    except (TypeError, ValueError):
        return str(value)


def _portable(line: str) -> str:
    """The command with this machine's absolute paths made relative to the working directory."""
    import os

    cwd = os.getcwd() + os.sep
    return line.replace(cwd, "")
