"""Each experiment's own conclusions: paragraphs (and plots) written from the logged numbers.

An analysis is ``fn(results, assets) -> {"paragraphs": [...], "figures": [(file, caption), ...]}``;
``experiment.yaml`` names it under ``analysis``. It states what the numbers say about the question and
the papers' claims, including where they disagree.
"""
from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from depthlab.experiments.report import Results, compare, figure, fmt, mean_curve, ranking


def _mean_series(results: Results, variant: str, tag: str) -> tuple[list[int], list[float]]:
    steps, mean, _, _ = mean_curve(results.series(variant, tag))
    return steps, mean


def _has(results: Results, *variants: str) -> bool:
    return all(v in results.runs and results.runs[v] for v in variants)


def _first_last(results: Results, variant: str, tag: str) -> tuple[float, float] | None:
    steps, mean = _mean_series(results, variant, tag)
    return (mean[0], mean[-1]) if mean else None


def _area(results: Results, variant: str, tag: str) -> float:
    """Mean of the seed-averaged curve over its logged steps (lower: converged sooner, for a loss or error)."""
    _, mean = _mean_series(results, variant, tag)
    return statistics.fmean(mean) if mean else math.nan


def silog_sqrt(results: Results, assets: Path) -> dict[str, Any]:
    paragraphs = []
    if _has(results, "eigen", "root", "eigen_matched"):
        areas = {v: _area(results, v, "val/abs_rel") for v in ("eigen", "root", "eigen_matched")}
        order = sorted(areas, key=areas.get)
        paragraphs.append(
            "**Convergence (SGD).** Mean validation abs_rel over the run (lower: converged sooner): "
            + ", ".join(f"{results.label(v)} {fmt(areas[v])}" for v in order) + ". "
            + compare(results, "root", "eigen", "abs_rel") + " " + compare(results, "root", "eigen_matched", "abs_rel"))
        g_eigen = _first_last(results, "eigen", "train/grad_norm_output")
        g_root = _first_last(results, "root", "train/grad_norm_output")
        if g_eigen and g_root and g_eigen[0] > 0:
            ratio = g_root[0] / g_eigen[0]
            paragraphs.append(
                f"**Is the root a learning-rate change?** At the first logged step the root's output gradient is "
                f"{fmt(ratio, 2)} times Eigen's (the matched lr uses 10.88, measured at initialisation). "
                + _lr_change(results))
    for variant, other in (("root", "eigen"), ("root_fit", "eigen_matched_fit")):
        if not _has(results, variant, other):
            continue
        loss_v, grad_v = _first_last(results, variant, "train/loss"), _first_last(results, variant, "train/grad_norm_output")
        loss_o, grad_o = _first_last(results, other, "train/loss"), _first_last(results, other, "train/grad_norm_output")
        if not (loss_v and grad_v and loss_o and grad_o):
            continue
        grows = grad_v[1] / grad_v[0]
        plain = grad_o[1] / grad_o[0]
        where = "on 8 scenes (near-zero regime)" if variant == "root_fit" else "on the full training set"
        paragraphs.append(
            f"**Gradient as the loss falls, {where}.** {results.label(variant)}: loss {fmt(loss_v[0])} -> {fmt(loss_v[1])}, "
            f"output gradient norm x{fmt(grows, 3)} from the first to the last logged step; {results.label(other)}: loss "
            f"{fmt(loss_o[0])} -> {fmt(loss_o[1])}, gradient x{fmt(plain, 3)}. "
            + (f"Relative to the plain form the root's gradient is {fmt(grows / plain, 3)} times larger at the end than at "
               f"the start: the 1/(2 sqrt(L)) factor " + (
                   "at work. For a squared error |dx/d pred| shrinks like sqrt(x), so the root's gradient "
                   "5 |dx/d pred| / sqrt(x) keeps its size, as an L1 loss's does, instead of vanishing as the fit improves "
                   "(the toy_root_mae experiment shows where that leads near an exact fit)."
                   if grows / plain > 1.5 else "is visible only weakly here.")))
    if _has(results, "eigen_adamw", "root_adamw"):
        paragraphs.append("**AdamW.** " + compare(results, "root_adamw", "eigen_adamw", "abs_rel")
                          + " Adam divides each gradient by its running RMS, so a global factor on the loss (10, or "
                            "1/(2 sqrt(L)) while it changes slowly) has little effect on the update.")
    if _has(results, "root", "eigen_matched"):
        verdict = compare(results, "root", "eigen_matched", "abs_rel")
        supported = verdict.startswith(results.label("root")) and "no difference" not in verdict and "one seed" not in verdict
        paragraphs.append(
            "**Against the papers.** BTS's claim that the root with factor 10 'improves convergence' is "
            + ("supported here against Eigen's form at a matched learning rate." if supported else
               "not supported here once Eigen's form gets the learning rate the root implies: at this scale the root "
               "acts mostly as a larger learning rate (under SGD) or not at all (under AdamW)."))
    return {"paragraphs": paragraphs}


def _lr_change(results: Results) -> str:
    verdict = _verdict(results, "root", "eigen_matched", "abs_rel")
    sentence = compare(results, "root", "eigen_matched", "abs_rel")
    if verdict == "same":
        return sentence + " With its learning rate matched, Eigen's form does what the root does: the root is a learning-rate change."
    if verdict == "worse":
        return (sentence + " Eigen's form with the matched lr does better than the root: what the root adds over Eigen at "
                "the same lr is a larger step, and a constant larger lr gives more of it. The root's own factor "
                "10 / (2 sqrt(L)) keeps growing as L falls, against the schedule's decay.")
    if verdict == "better":
        return (sentence + " The root does more than a constant lr change: its factor 10 / (2 sqrt(L)) grows as L falls, "
                "which a fixed lr does not copy.")
    return sentence


def toy_root_mae(results: Results, assets: Path) -> dict[str, Any]:
    paragraphs = []
    if _has(results, "mae", "root_mae"):
        mae = {m: results.summary("mae", m)[0] for m in results.exp.metrics}
        root = {m: results.summary("root_mae", m)[0] for m in results.exp.metrics}
        paragraphs.append(
            f"MAE first gets within 1 % of y at step {int(mae['first_step_within_1pct'])} and then moves in steps of "
            f"lr x = 0.003: over the second half its error averages {fmt(mae['late_mean_error'])} (at most "
            f"{fmt(mae['late_max_error'])}). Root-MAE gets within 1 % at step {int(root['first_step_within_1pct'])}, "
            f"but over the second half its error averages {fmt(root['late_mean_error'])} (at most {fmt(root['late_max_error'])}), "
            f"and m swings over a range of {fmt(root['late_m_range'])} against MAE's {fmt(mae['late_m_range'])}. "
            + ("The root oscillates around the optimum: each step near it is lr x / (2 sqrt(|e|)), larger the closer m "
               "gets, so it overshoots by more than the error it corrects." if root["late_mean_error"] > mae["late_mean_error"]
               else "At this step count the root does not oscillate more than the MAE."))
    if _has(results, "root_mae_eps"):
        eps = {m: results.summary("root_mae_eps", m)[0] for m in results.exp.metrics}
        paragraphs.append(
            f"depthlab's guard, sqrt(|e| + 1e-8), caps the gradient at x / (2e-4) = 1.5e4 but does not remove the "
            f"oscillation at lr 1e-3 (second-half error {fmt(eps['late_mean_error'])}): the eps keeps gradients finite at an "
            f"exact fit, it is not a cure for the root's step size near the optimum.")
    return {"paragraphs": paragraphs}


def _verdict(results: Results, a: str, b: str, metric: str, evaluation: str | None = None) -> str:
    """'better', 'worse' or 'same' for ``a`` against ``b`` (a difference must exceed the seed spread)."""
    ma, sa, na = results.summary(a, metric, evaluation)
    mb, sb, nb = results.summary(b, metric, evaluation)
    if min(na, nb) < 2 or math.isnan(ma) or math.isnan(mb):  # one seed: the spread is unknown
        return "unknown"
    if abs(ma - mb) <= max(sa, sb):
        return "same"
    higher = results.exp.metric_higher_is_better(metric)
    return "better" if (ma > mb) == higher else "worse"


def _claim(supported: bool | str | None, text: str) -> str:
    """``True``/``"agrees"``, ``False``/``"disagrees"`` (the measurement goes against the claim),
    ``"not confirmed"`` (no difference beyond the seed spread) or ``None`` (not decided: one seed)."""
    status = {True: "agrees", False: "disagrees"}.get(supported, supported) if isinstance(supported, bool) else supported
    if status is None:
        return f"{text}: not decided at this scale (one seed, no spread)."
    if status == "agrees":
        return f"{text}: agrees with the paper here."
    if status == "not confirmed":
        return f"{text}: **not confirmed** here (the differences are within the seed spread)."
    return f"{text}: **disagrees** with the paper here."


def _status(verdicts: list[str], want: str = "better") -> str | None:
    """The claim 'every comparison is ``want``' against the verdicts of :func:`_verdict`."""
    if not verdicts or "unknown" in verdicts:
        return None
    if all(v == want for v in verdicts):
        return "agrees"
    opposite = {"better": "worse", "worse": "better"}[want]
    return "disagrees" if opposite in verdicts else "not confirmed"


def losses(results: Results, assets: Path) -> dict[str, Any]:
    paragraphs = []
    key = ("abs_rel", "delta1", "rmse")
    if _has(results, "berhu", "l2", "l1"):
        against = {other: {m: _verdict(results, "berhu", other, m) for m in key} for other in ("l2", "l1")}
        text = "**berHu (Laina et al.).** " + " ".join(
            f"Against {results.label(o)}: " + ", ".join(f"{m} {v}" for m, v in against[o].items()) + "." for o in against)
        wins = sum(v == "better" for o in against.values() for v in o.values())
        losses_ = sum(v == "worse" for o in against.values() for v in o.values())
        every = [v for o in against.values() for v in o.values()]
        text += " " + _claim(_status(every),
                             f"The claim that berHu beats L2 and L1 on every metric ({wins} of {len(every)} comparisons better, "
                             f"{losses_} worse, the rest within the seed spread)")
        paragraphs.append(text)
    if _has(results, "silog_l05", "silog_l0"):
        verdicts = {m: _verdict(results, "silog_l05", "silog_l0", m) for m in results.exp.metrics}
        better = [m for m, v in verdicts.items() if v == "better"]
        worse = [m for m, v in verdicts.items() if v == "worse"]
        paragraphs.append(
            f"**SiLog lambda 0.5 vs 0 (Eigen et al.).** lambda 0.5 is better on {', '.join(better) or 'no metric'}, worse on "
            f"{', '.join(worse) or 'no metric'}, the same within the seed spread on the rest. "
            + _claim(_status(list(verdicts.values())), "The claim that the scale-invariant term improves every metric"))
    if _has(results, "silog_l1", "silog_l05"):
        paragraphs.append(
            "**lambda 1.** " + compare(results, "silog_l05", "silog_l1", "abs_rel")
            + " With lambda 1 nothing trains the global scale, so metric-depth numbers pay for it; experiment "
              "scale_invariance measures it with and without median scaling.")
    if _has(results, "smooth_l1_s1", "smooth_l1_s3", "l1", "l2"):
        s1, s3 = results.summary("smooth_l1_s1", "abs_rel")[0], results.summary("smooth_l1_s3", "abs_rel")[0]
        l1, l2 = results.summary("l1", "abs_rel")[0], results.summary("l2", "abs_rel")[0]
        paragraphs.append(
            f"**Smooth L1's sigma.** abs_rel: sigma 1 {fmt(s1)}, sigma 3 {fmt(s3)}, L1 {fmt(l1)}, L2 {fmt(l2)}. "
            + compare(results, "smooth_l1_s3", "smooth_l1_s1", "abs_rel") + " "
            + compare(results, "smooth_l1_s3", "smooth_l1_s1", "rmse")
            + " With sigma 3 the quadratic zone is |x| < 0.11 m, so nearly every residual gets L1's constant gradient; "
              "with sigma 1 residuals under 1 m (most of a room's) get a gradient that shrinks with them.")
    top = ranking(results, "abs_rel")
    if top:
        paragraphs.append("Ranked by abs_rel: " + " < ".join(results.label(v) for v, *_ in top) + ".")
    return {"paragraphs": paragraphs, "figures": _metric_map(results, assets, exclude=("silog_l1",))}


def _metric_map(results: Results, assets: Path, exclude: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """A heat map: per metric (column), how far each variant's mean is from the best one, in % of the best."""
    variants = [v for v in results.runs if results.runs[v] and v not in exclude]
    metrics = list(results.exp.metrics)
    if len(variants) < 2:
        return []
    best = {m: ranking(results, m, variants=variants)[0][1] for m in metrics}
    gaps = [[abs(results.summary(v, m)[0] - best[m]) / abs(best[m]) * 100 if best[m] else 0.0 for m in metrics]
            for v in variants]
    with figure(assets / "metrics_by_variant.png", (7.2, 0.45 * len(variants) + 1.6)) as (fig, ax):
        image = ax.imshow(gaps, cmap="viridis_r", aspect="auto")
        ax.set_xticks(range(len(metrics)), metrics, fontsize=8)
        ax.set_yticks(range(len(variants)), [results.label(v) for v in variants], fontsize=8)
        for i, row in enumerate(gaps):
            for j, value in enumerate(row):
                ax.text(j, i, f"{value:.1f}", ha="center", va="center", fontsize=7,
                        color="w" if value > max(map(max, gaps)) / 2 else "k")
        ax.set_title("% behind the best variant, per metric (0: best)" + (
            f"; without {', '.join(results.label(v) for v in exclude if v in results.runs)}" if exclude else ""), fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.03)
    return [("metrics_by_variant.png", "how far each variant is from the best, per metric")]


def scale_invariance(results: Results, assets: Path) -> dict[str, Any]:
    variants = [v for v in results.runs if results.runs[v]]
    lambdas = [float(results.label(v).split("=")[-1]) for v in variants]  # labels "l=0.25"
    figures = []
    paragraphs = []
    rows = {e: [results.summary(v, "abs_rel", e) for v in variants] for e in ("metric", "median")}
    if all(rows[e] for e in rows):
        with figure(assets / "abs_rel_vs_lambda.png") as (fig, ax):
            for e, label in (("metric", "metric depth"), ("median", "median scaled")):
                means = [r[0] for r in rows[e]]
                stds = [r[1] for r in rows[e]]
                ax.errorbar(lambdas, means, yerr=stds, marker="o", capsize=3, label=label)
            ax.set_yscale("log")
            ax.set_xlabel("SiLog lambda")
            ax.set_ylabel("test abs_rel (log scale)")
            ax.set_title("abs_rel against lambda (mean and std over seeds)", fontsize=10)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        figures.append(("abs_rel_vs_lambda.png", "abs_rel against lambda, metric and median scaled"))
        metric_best = min(zip(variants, rows["metric"]), key=lambda x: x[1][0])
        median_best = min(zip(variants, rows["median"]), key=lambda x: x[1][0])
        gaps = [m[0] - d[0] for m, d in zip(rows["metric"], rows["median"])]
        paragraphs.append(
            f"Metric depth is best at {results.label(metric_best[0])} (abs_rel {fmt(metric_best[1][0])}); median-scaled "
            f"depth at {results.label(median_best[0])} ({fmt(median_best[1][0])}). The price of the unknown scale (metric "
            f"minus median-scaled abs_rel) goes " + ", ".join(f"{results.label(v)} {fmt(g)}" for v, g in zip(variants, gaps)) + ".")
        if "lambda_0" in variants and "lambda_1" in variants:
            i0, i1 = variants.index("lambda_0"), variants.index("lambda_1")
            paragraphs.append(
                "What scale invariance buys in relative accuracy: " + compare(results, "lambda_1", "lambda_0", "abs_rel", "median")
                + " What it costs in metric accuracy: " + compare(results, "lambda_1", "lambda_0", "abs_rel", "metric")
                + f" (metric abs_rel {fmt(rows['metric'][i0][0])} at lambda 0, {fmt(rows['metric'][i1][0])} at lambda 1).")
        if "lambda_05" in variants and "lambda_0" in variants:
            keeps = _verdict(results, "lambda_05", "lambda_0", "abs_rel", "metric")
            gains = _verdict(results, "lambda_05", "lambda_0", "abs_rel", "median")
            decided = "unknown" not in (keeps, gains)
            paragraphs.append(
                f"lambda 0.5 against lambda 0: metric abs_rel {keeps if keeps != 'same' else 'the same within the seed spread'}, "
                f"median-scaled abs_rel {gains if gains != 'same' else 'the same within the seed spread'}. "
                + _claim(None if not decided else "disagrees" if keeps == "worse" or gains == "worse" else
                         "agrees" if gains == "better" else "not confirmed",
                         "Eigen et al.'s argument for lambda 0.5 (keeps absolute-scale accuracy, improves the relative one)"))
    return {"paragraphs": paragraphs, "figures": figures}


def eigen_coarse_fine(results: Results, assets: Path) -> dict[str, Any]:
    paragraphs = []
    if _has(results, "coarse", "stagewise"):
        c, f = results.summary("coarse", "abs_rel")[0], results.summary("stagewise", "abs_rel")[0]
        verdict = _verdict(results, "stagewise", "coarse", "abs_rel")
        paragraphs.append(
            f"**Stage-wise, as in the paper.** The fine stack takes abs_rel from {fmt(c)} (coarse) to {fmt(f)} "
            f"({100 * (c - f) / c:+.1f} % relative; the paper reports 0.228 -> 0.215 on NYU, +5.7 %). "
            + compare(results, "stagewise", "coarse", "abs_rel") + " "
            + _claim(_status([verdict]), "The claim that the fine stack improves on the coarse output"))
    if _has(results, "joint", "coarse"):
        paragraphs.append("**Joint training.** " + compare(results, "joint", "coarse", "abs_rel")
                          + (" " + compare(results, "joint", "stagewise", "abs_rel") if _has(results, "stagewise") else ""))
    if _has(results, "unet"):
        best = ranking(results, "abs_rel", variants=[v for v in ("coarse", "joint", "stagewise") if _has(results, v)])
        if best:
            paragraphs.append("**Against a U-Net.** " + compare(results, "unet", best[0][0], "abs_rel")
                              + " The U-Net's skip connections carry full-resolution detail that Eigen's fine stack "
                                "has to recover from the image through three convolutions.")
    return {"paragraphs": paragraphs}


def depth_hints(results: Results, assets: Path) -> dict[str, Any]:
    paragraphs = []
    if _has(results, "hint", "self", "sum", "hard"):
        verdicts = {o: _verdict(results, "hint", o, "abs_rel") for o in ("self", "sum", "hard")}
        paragraphs.append(
            "**Supervision modes.** " + " ".join(compare(results, "hint", o, "abs_rel") for o in ("self", "sum", "hard")) + " "
            + _claim(_status(list(verdicts.values())),
                     "The claim that the hint mode beats self-supervision, the sum and the hard labels"))
    if _has(results, "hard_uncertainty", "hard"):
        paragraphs.append("**Uncertainty.** " + compare(results, "hard_uncertainty", "hard", "abs_rel"))
    if _has(results, "self_nomask", "self"):
        # not a claim of the paper: whether Monodepth2's auto-masking holds the photometric loss back here
        paragraphs.append("**Auto-masking.** " + compare(results, "self_nomask", "self", "abs_rel")
                          + (" " + compare(results, "self_nomask", "hint", "abs_rel") if _has(results, "hint") else ""))
    rows = results.extras.get("hint_quality")
    figures = []
    if rows:
        with figure(assets / "hint_quality.png", (7.2, 4.0)) as (fig, ax):
            x = list(range(len(rows)))
            ax.bar([i - 0.2 for i in x], [float(r["coverage"]) for r in rows], width=0.4, label="coverage")
            ax.bar([i + 0.2 for i in x], [float(r["within_5pct"]) for r in rows], width=0.4, label="within 5 % (of all gt pixels)")
            ax.set_xticks(x, [r["hints"] for r in rows], rotation=60, ha="right", fontsize=7)
            ax.set_ylim(0, 1)
            ax.set_title("Hints of each SGM setting and fused, against ground truth", fontsize=10)
            ax.grid(alpha=0.3, axis="y")
            ax.legend(fontsize=8)
        figures.append(("hint_quality.png", "coverage and accuracy of each SGM setting and of the fused hints"))
        singles = [r for r in rows if r["hints"] != "fused"]
        fused = next((r for r in rows if r["hints"] == "fused"), None)
        if fused and singles:
            best_within = max(singles, key=lambda r: float(r["within_5pct"]))
            best_cov = max(singles, key=lambda r: float(r["coverage"]))
            best_rel = min(singles, key=lambda r: float(r["abs_rel"]))
            beats = float(fused["within_5pct"]) > float(best_within["within_5pct"])
            paragraphs.append(
                f"**Hint quality.** Fused hints: coverage {fmt(float(fused['coverage']))}, abs_rel {fmt(float(fused['abs_rel']))}, "
                f"{100 * float(fused['within_5pct']):.1f} % of ground-truth pixels within 5 %. Best single setting by that "
                f"measure: {best_within['hints']} ({100 * float(best_within['within_5pct']):.1f} %); widest coverage "
                f"{best_cov['hints']} ({fmt(float(best_cov['coverage']))}); lowest abs_rel {best_rel['hints']} "
                f"({fmt(float(best_rel['abs_rel']))}). Fusion covers every pixel some setting covers, so its coverage is "
                f"the largest by construction; what it has to show is accuracy. "
                + _claim(beats, "The claim that fused hints are better labels than any single setting (pixels within 5 %)"))
    return {"paragraphs": paragraphs, "figures": figures}


def self_supervision(results: Results, assets: Path) -> dict[str, Any]:
    paragraphs = []
    if _has(results, "MS", "M", "S"):
        # each variant's own protocol is how Monodepth2 reports (M median-scaled, S and MS metric)
        verdicts = [_verdict(results, "MS", other, "abs_rel", "own") for other in ("M", "S")]
        paragraphs.append(
            "**Video, stereo or both.** " + compare(results, "MS", "M", "abs_rel", "own") + " "
            + compare(results, "MS", "S", "abs_rel", "own") + " Median-scaled, all alike: "
            + compare(results, "MS", "M", "abs_rel", "median") + " "
            + _claim(_status(verdicts), "Monodepth2's claim that MS beats M and S"))
    pairs = [(h, b) for h, b in (("S_hints", "S"), ("MS_hints", "MS")) if _has(results, h, b)]
    if pairs:
        verdicts = [_verdict(results, h, b, "abs_rel", "own") for h, b in pairs]
        paragraphs.append(
            "**Depth Hints.** " + " ".join(compare(results, h, b, "abs_rel", "own") for h, b in pairs) + " "
            + _claim(_status(verdicts), "The claim that Depth Hints improve S and MS"))
    rows = results.extras.get("pose_ate")
    if rows:
        parts = []
        for row in rows:
            parts.append(f"{row['variant']} seed {row['seed']}: ATE {float(row['ate_mean']):.4f} +- {float(row['ate_std']):.4f} m "
                         f"(untrained {float(row['untrained_mean']):.4f}; standing still {float(row['still_mean']):.4f}) over "
                         f"{row['snippets']} snippets" + (f" of frames {row['frames']}" if row.get("frames") else ""))
        trained = [r for r in rows if r["variant"] == "M"]
        better = bool(trained) and all(float(r["ate_mean"]) < float(r["untrained_mean"]) for r in trained)
        paragraphs.append("**Pose network.** " + "; ".join(parts) + ". "
                          + _claim(better if trained else None,
                                   "The claim that M's pose network recovers the motion (ATE below the untrained network's)"))
    return {"paragraphs": paragraphs}
