"""The decision rule of measured tuning: a candidate replaces the planned value only if it wins
beyond the measured noise and does not make tail latency worse.

For each challenger against the baseline (the value the rules plan):

1. **Beyond the noise:** an exact one-sided permutation test on the difference of the means of
   the workload's metric (higher is better: IOPS, MiB/s). With ``n`` and ``m`` samples it
   enumerates every one of the C(n+m, n) ways to split the pooled samples (252 for 5 and 5; a
   seeded Monte Carlo of ``MAX_SPLITS`` splits above that), so the p-value is exact and needs no
   normality assumption (Good, "Permutation, Parametric and Bootstrap Tests of Hypotheses",
   ch. 3). The challenger must reach ``p < alpha`` (0.05) **and** a mean gain of at least
   ``min_gain`` (3 %: smaller wins are not worth a change that a later kernel may undo).
2. **No worse tail:** the median of its p99 completion latencies may exceed the baseline's by at
   most ``p99_margin`` (10 %), when latencies were measured.

Of the challengers that pass, the one with the largest mean gain wins; otherwise the baseline
stays, and the decision says "measured: <baseline> best" when the baseline itself beats the best
challenger by the same rule, else "measured: no significant difference" with the best
challenger's figures. Samples are interleaved by the caller (candidate order rotated) so drift on a shared
host hits every candidate alike; this module only judges them.
"""

from __future__ import annotations

import itertools
import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

MIN_SAMPLES = 3  # fewer cannot reach p < 0.05 with a one-sided permutation test (1/C(6,3) = 0.05)
MAX_SPLITS = 20_000


@dataclass(frozen=True)
class Samples:
    """One candidate's repeated measurements: ``metric`` (higher is better, e.g. IOPS) and,
    when measured, ``p99_ms`` (99th percentile completion latency in milliseconds)."""

    candidate: str
    metric: Sequence[float]
    p99_ms: Sequence[float] = ()

    def __post_init__(self) -> None:
        if len(self.metric) < MIN_SAMPLES:
            raise ValueError(f"{self.candidate}: expected at least {MIN_SAMPLES} samples, got {len(self.metric)}")
        for value in (*self.metric, *self.p99_ms):
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{self.candidate}: expected finite non-negative samples, got {value!r}")


@dataclass(frozen=True)
class Comparison:
    """A challenger against the baseline: mean gain (0.05 = 5 % more), one-sided p-value, and the
    p99 change (0.1 = 10 % slower tail; ``None`` without latencies)."""

    candidate: str
    gain: float
    p_value: float
    p99_change: float | None
    passed: bool
    why: str


@dataclass(frozen=True)
class Decision:
    """``chosen``: the baseline or the winning challenger; ``changed``: a challenger won;
    ``reason``: one line for the plan; ``comparisons``: every challenger's figures."""

    chosen: str
    changed: bool
    reason: str
    comparisons: tuple[Comparison, ...]


def permutation_p_value(better: Sequence[float], base: Sequence[float], seed: int = 0) -> float:
    """One-sided p-value that ``better``'s mean exceeds ``base``'s by chance: the share of splits
    of the pooled samples whose mean difference is at least the observed one (exact up to
    ``MAX_SPLITS`` splits, else a Monte Carlo estimate with a fixed ``seed``)."""
    pooled = [*better, *base]
    n, total = len(better), sum(pooled)
    observed = sum(better) / n - (total - sum(better)) / len(base)
    eps = 1e-12 * max(1.0, abs(observed))

    def diff(chosen_sum: float) -> float:
        return chosen_sum / n - (total - chosen_sum) / len(base)

    if math.comb(len(pooled), n) <= MAX_SPLITS:
        sums = [sum(c) for c in itertools.combinations(pooled, n)]
    else:
        rng = random.Random(seed)
        sums = [sum(rng.sample(pooled, n)) for _ in range(MAX_SPLITS)]
    return sum(1 for s in sums if diff(s) >= observed - eps) / len(sums)


def compare(
    challenger: Samples, baseline: Samples, alpha: float = 0.05, min_gain: float = 0.03, p99_margin: float = 0.10
) -> Comparison:
    """Judge one challenger against the baseline by the rule in the module docstring."""
    base_mean = statistics.fmean(baseline.metric)
    gain = statistics.fmean(challenger.metric) / base_mean - 1 if base_mean else math.inf
    p = permutation_p_value(challenger.metric, baseline.metric)
    p99 = None
    if challenger.p99_ms and baseline.p99_ms:
        base_p99 = statistics.median(baseline.p99_ms)
        p99 = statistics.median(challenger.p99_ms) / base_p99 - 1 if base_p99 else 0.0
    if p >= alpha:
        why = f"not beyond the noise (p = {p:.3f} >= {alpha})"
    elif gain < min_gain:
        why = f"gain {gain:+.1%} below {min_gain:.0%}"
    elif p99 is not None and p99 > p99_margin:
        why = f"p99 latency {p99:+.1%} worse (more than {p99_margin:.0%})"
    else:
        why = "wins"
    return Comparison(challenger.candidate, gain, p, p99, why == "wins", why)


def decide(baseline: Samples, challengers: Sequence[Samples], unit: str = "IOPS", **rule: float) -> Decision:
    """The candidate to plan: the baseline unless a challenger passes ``compare`` (keyword
    ``rule`` values: ``alpha``, ``min_gain``, ``p99_margin``); the best gain among those that do."""
    comparisons = tuple(compare(c, baseline, **rule) for c in challengers)
    winners = sorted((c for c in comparisons if c.passed), key=lambda c: c.gain, reverse=True)
    by_name = {s.candidate: s for s in (baseline, *challengers)}
    if winners:
        best = winners[0]
        figures = f"{_figures(by_name[best.candidate], unit)} vs {_figures(baseline, unit)}"
        reason = f"{figures} ({best.gain:+.0%}, p = {best.p_value:.3f}, n = {len(baseline.metric)})"
        return Decision(best.candidate, True, reason, comparisons)
    if not comparisons:
        return Decision(baseline.candidate, False, "measured: no other candidate", comparisons)
    closest = max(comparisons, key=lambda c: c.gain)
    reverse = compare(baseline, by_name[closest.candidate], **rule)
    if reverse.passed:  # the planned value itself wins beyond the noise against the best other
        figures = f"{_figures(baseline, unit)} vs {_figures(by_name[closest.candidate], unit)}"
        stats = f"{reverse.gain:+.0%}, p = {reverse.p_value:.3f}, n = {len(baseline.metric)}"
        reason = f"measured: {baseline.candidate} best: {figures} ({stats})"
        return Decision(baseline.candidate, False, reason, comparisons)
    reason = (
        f"measured: no significant difference; kept {baseline.candidate} "
        f"(best other: {closest.candidate} {closest.gain:+.0%}, {closest.why})"
    )
    return Decision(baseline.candidate, False, reason, comparisons)


def _figures(samples: Samples, unit: str) -> str:
    text = f"{samples.candidate} {statistics.median(samples.metric):,.0f} {unit}"
    if samples.p99_ms:
        text += f" p99 {statistics.median(samples.p99_ms):.2f} ms"
    return text
