"""Promotion rules by simulation: how often two equally good versions get a false decision,
and how much feedback a worse candidate needs before it is rolled back.

The decisions are made by the server's own code (`app.monitoring.comparison.judge_canary`,
`judge_shadow`) on simulated feedback, with the promoter's look rule: the evidence is judged
once per look (min_feedback_rows * 2**k rows with feedback), as feedback arrives in batches.
Each run goes on until a decision or `--max-rows` rows with feedback per version.

    python bench/promotion_sim.py                  # 20 runs per case (the issue's figure)
    python bench/promotion_sim.py --runs 2000      # a tighter estimate of the rates

Regressors (`judge_value_canary`, `judge_value_shadow`): errors ~ Normal(0, sd); equal
versions have the same sd (a shadow's two errors correlated, `--correlation`), a worse one
`--worse-error` times the sd.

Canary: each version's rows are right with its own accuracy (independent rows).
Shadow: each paired row falls in one cell of (baseline right?, candidate right?); equal
versions have as many rows where only the baseline is right as rows where only the candidate
is (the discordant share is `--discordant`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.monitoring.comparison import (
    ShadowCounts,
    VersionCounts,
    judge_canary,
    judge_shadow,
    look_of,
)
from app.monitoring.comparison_values import (
    ValueShadowCounts,
    ValueVersionCounts,
    judge_value_canary,
    judge_value_shadow,
)
from app.repository.rules import PromotionRules


def canary_run(
    rng: np.random.Generator,
    rules: PromotionRules,
    baseline_accuracy: float,
    candidate_accuracy: float,
    batch: int,
    max_rows: int,
) -> tuple[str, int]:
    """(decision or "none", rows with feedback per version when it was made)."""
    base, cand = VersionCounts(), VersionCounts()
    judged = -1
    while base.feedback_rows < max_rows:
        base.feedback_rows += batch
        cand.feedback_rows += batch
        base.correct += int(rng.binomial(batch, baseline_accuracy))
        cand.correct += int(rng.binomial(batch, candidate_accuracy))
        look = look_of(base.feedback_rows, rules)
        if look is None or look <= judged:
            continue  # the promoter judges each look once: skip the statistics between
        verdict = judge_canary(cand, base, rules)
        if verdict.look is None or verdict.look <= judged:
            continue
        judged = verdict.look
        if verdict.action != "wait":
            return verdict.action, base.feedback_rows
    return "none", base.feedback_rows


def shadow_run(
    rng: np.random.Generator,
    rules: PromotionRules,
    cells: tuple[float, float, float, float],
    batch: int,
    max_rows: int,
) -> tuple[str, int]:
    """cells: shares of (both right, baseline only, candidate only, neither)."""
    counts = ShadowCounts()
    judged = -1
    while counts.feedback_rows < max_rows:
        both, b, c, neither = rng.multinomial(batch, cells).tolist()
        counts.both_right += both
        counts.baseline_only += b
        counts.candidate_only += c
        counts.neither += neither
        counts.rows += batch
        counts.agreed += both + neither  # labels differ at least where one is right
        look = look_of(counts.feedback_rows, rules)
        if look is None or look <= judged:
            continue
        verdict = judge_shadow(counts, rules)
        if verdict.look is None or verdict.look <= judged:
            continue
        judged = verdict.look
        if verdict.action != "wait":
            return verdict.action, counts.feedback_rows
    return "none", counts.feedback_rows


def value_canary_run(
    rng: np.random.Generator,
    rules: PromotionRules,
    baseline_sd: float,
    candidate_sd: float,
    batch: int,
    max_rows: int,
) -> tuple[str, int]:
    """A regressor's canary: each version's errors ~ Normal(0, its sd), independent rows."""
    base, cand = ValueVersionCounts(), ValueVersionCounts()
    judged = -1
    while base.feedback_rows < max_rows:
        for counts, sd in ((base, baseline_sd), (cand, candidate_sd)):
            e = rng.normal(0.0, sd, batch)
            counts.feedback_rows += batch
            counts.abs_sum += float(np.abs(e).sum())
            counts.squares += float((e * e).sum())
            counts.fourths += float((e**4).sum())
        look = look_of(base.feedback_rows, rules)
        if look is None or look <= judged:
            continue
        verdict = judge_value_canary(cand, base, rules)
        if verdict.look is None or verdict.look <= judged:
            continue
        judged = verdict.look
        if verdict.action != "wait":
            return verdict.action, base.feedback_rows
    return "none", base.feedback_rows


def value_shadow_run(
    rng: np.random.Generator,
    rules: PromotionRules,
    candidate_sd: float,
    correlation: float,
    batch: int,
    max_rows: int,
) -> tuple[str, int]:
    """A regressor's shadow: the baseline's errors ~ Normal(0, 1), the candidate's with the
    given sd and correlation with them (the same rows); no agreement rule (no tolerance)."""
    counts = ValueShadowCounts()
    judged = -1
    while counts.feedback_rows < max_rows:
        e_b = rng.normal(0.0, 1.0, batch)
        own = rng.normal(0.0, 1.0, batch)
        e_c = candidate_sd * (correlation * e_b + np.sqrt(1 - correlation**2) * own)
        gap = np.abs(e_c) - np.abs(e_b)
        counts.feedback_rows += batch
        counts.base_abs += float(np.abs(e_b).sum())
        counts.cand_abs += float(np.abs(e_c).sum())
        counts.gap_sum += float(gap.sum())
        counts.gap_squares += float((gap * gap).sum())
        look = look_of(counts.feedback_rows, rules)
        if look is None or look <= judged:
            continue
        verdict = judge_value_shadow(counts, rules)
        if verdict.look is None or verdict.look <= judged:
            continue
        judged = verdict.look
        if verdict.action != "wait":
            return verdict.action, counts.feedback_rows
    return "none", counts.feedback_rows


def summarise(name: str, outcomes: list[tuple[str, int]], wrong: str) -> None:
    runs = len(outcomes)
    wrong_runs = sum(action == wrong for action, _ in outcomes)
    by_action = {a: sum(o == a for o, _ in outcomes) for a in ("promote", "rollback", "none")}
    rows = [r for a, r in outcomes if a != "none"]
    print(
        f"| {name} | {runs} | {by_action['promote']} | {by_action['rollback']} | "
        f"{by_action['none']} | {wrong_runs}/{runs} = {wrong_runs / runs:.3f} | "
        f"{int(np.median(rows)) if rows else '-'} | {max(rows) if rows else '-'} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--batch", type=int, default=10, help="feedback rows per poll")
    parser.add_argument("--max-rows", type=int, default=25_600)
    parser.add_argument("--min-feedback-rows", type=int, default=200)
    parser.add_argument("--max-accuracy-drop", type=float, default=0.02)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--accuracy", type=float, default=0.95)
    parser.add_argument("--worse-accuracy", type=float, default=0.65)
    parser.add_argument("--discordant", type=float, default=0.06)
    parser.add_argument("--max-error-increase", type=float, default=0.05)
    parser.add_argument(
        "--worse-error", type=float, default=1.5, help="regressor: the worse one's error sd"
    )
    parser.add_argument(
        "--correlation", type=float, default=0.8, help="regressor shadow: of the two errors"
    )
    args = parser.parse_args()
    rules = PromotionRules(
        min_feedback_rows=args.min_feedback_rows,
        max_accuracy_drop=args.max_accuracy_drop,
        max_error_increase=args.max_error_increase,
        significance_level=args.alpha,
        min_agreement=0.8,
    )
    rng = np.random.default_rng(args.seed)
    p, d = args.accuracy, args.discordant
    equal_cells = (p - d / 2, d / 2, d / 2, 1 - p - d / 2)
    w = args.worse_accuracy
    # Worse shadow: the candidate is right on a share w of rows, nearly all also right for
    # the baseline.
    worse_cells = (w - 0.01, p - w + 0.01, 0.01, 1 - p - 0.01)
    print(
        f"rules: {rules.model_dump()}; feedback in batches of {args.batch} rows; "
        f"at most {args.max_rows} rows per run; seed {args.seed}\n"
    )
    print(
        "| case | runs | promoted | rolled back | no decision | false decisions | "
        "median rows at decision | max rows |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    run = args.runs
    summarise(
        f"canary, equal ({p:g} vs {p:g})",
        [canary_run(rng, rules, p, p, args.batch, args.max_rows) for _ in range(run)],
        "rollback",
    )
    summarise(
        f"shadow, equal ({p:g}, {d:g} discordant)",
        [shadow_run(rng, rules, equal_cells, args.batch, args.max_rows) for _ in range(run)],
        "rollback",
    )
    summarise(
        f"canary, worse ({w:g} vs {p:g})",
        [canary_run(rng, rules, p, w, args.batch, args.max_rows) for _ in range(run)],
        "promote",
    )
    summarise(
        f"shadow, worse ({w:g} vs {p:g})",
        [shadow_run(rng, rules, worse_cells, args.batch, args.max_rows) for _ in range(run)],
        "promote",
    )
    # Worse by just the margin: the rules may go either way; shown for the power.
    q = p - 2 * args.max_accuracy_drop
    summarise(
        f"canary, worse by twice the margin ({q:g} vs {p:g})",
        [canary_run(rng, rules, p, q, args.batch, args.max_rows) for _ in range(run)],
        "promote",
    )
    r, k = args.worse_error, args.correlation
    summarise(
        "regressor canary, equal (error sd 1 vs 1)",
        [value_canary_run(rng, rules, 1.0, 1.0, args.batch, args.max_rows) for _ in range(run)],
        "rollback",
    )
    summarise(
        f"regressor shadow, equal (error sd 1 vs 1, correlation {k:g})",
        [value_shadow_run(rng, rules, 1.0, k, args.batch, args.max_rows) for _ in range(run)],
        "rollback",
    )
    summarise(
        f"regressor canary, worse (error sd {r:g} vs 1)",
        [value_canary_run(rng, rules, 1.0, r, args.batch, args.max_rows) for _ in range(run)],
        "promote",
    )
    summarise(
        f"regressor shadow, worse (error sd {r:g} vs 1)",
        [value_shadow_run(rng, rules, r, k, args.batch, args.max_rows) for _ in range(run)],
        "promote",
    )


if __name__ == "__main__":
    main()
