"""The decision rule of measured tuning, from recorded samples (IOPS and p99 of 4 KiB random
reads as fio reports them; the numbers are of the shape the test VMs give, written out here so
each case's answer is known)."""

import math

import pytest

from fleetforge.measure.decide import Samples, compare, decide, permutation_p_value

MQ = Samples("mq-deadline", [44100, 43800, 44900, 43500, 44400], [1.41, 1.38, 1.45, 1.40, 1.43])
NONE_FAST = Samples("none", [61200, 60800, 61900, 60500, 61400], [0.91, 0.88, 0.93, 0.90, 0.95])
NONE_SAME = Samples("none", [44300, 43600, 45000, 43900, 44200], [1.40, 1.42, 1.39, 1.44, 1.41])


def test_exact_permutation_p_value_of_a_clean_separation_is_one_split_in_252():
    assert math.isclose(permutation_p_value(NONE_FAST.metric, MQ.metric), 1 / 252)
    assert permutation_p_value(MQ.metric, NONE_FAST.metric) == 1.0  # the other way round: never
    assert 0.2 < permutation_p_value(NONE_SAME.metric, MQ.metric) < 0.8


def test_a_clear_winner_replaces_the_rule_and_says_so_with_its_figures():
    d = decide(MQ, [NONE_FAST])
    assert d.chosen == "none" and d.changed
    assert d.reason == "none 61,200 IOPS p99 0.91 ms vs mq-deadline 44,100 IOPS p99 1.41 ms (+39%, p = 0.004, n = 5)"


def test_overlapping_samples_keep_the_rule_as_no_significant_difference():
    d = decide(MQ, [NONE_SAME])
    assert d.chosen == "mq-deadline" and not d.changed
    assert d.reason.startswith("measured: no significant difference; kept mq-deadline (best other: none +0%")
    assert "not beyond the noise" in d.reason


def test_a_win_on_the_metric_that_costs_tail_latency_is_refused():
    slow_tail = Samples("kyber", NONE_FAST.metric, [1.70, 1.66, 1.72, 1.69, 1.75])
    c = compare(slow_tail, MQ)
    assert c.p_value < 0.05 and c.gain > 0.3 and not c.passed and "p99 latency +20.6% worse" in c.why
    assert decide(MQ, [slow_tail]).chosen == "mq-deadline"


def test_a_significant_but_tiny_gain_is_not_worth_a_change():
    steady = Samples("mq-deadline", [1000, 1001, 1002, 1003, 1004])
    tiny = Samples("none", [1021, 1022, 1023, 1024, 1025])  # always 2 % more: significant, small
    c = compare(tiny, steady)
    assert c.p_value < 0.05 and not c.passed and "gain +2.1% below 3%" in c.why


def test_of_two_winners_the_larger_gain_wins_and_every_comparison_is_kept():
    bfq = Samples("bfq", [52000, 51500, 52600, 51800, 52300], [1.20, 1.22, 1.19, 1.25, 1.21])
    d = decide(MQ, [bfq, NONE_FAST])
    assert d.chosen == "none" and [c.candidate for c in d.comparisons] == ["bfq", "none"]
    assert all(c.passed for c in d.comparisons)


def test_read_ahead_in_mib_per_s_without_latencies():
    ra_128 = Samples("128", [180, 176, 183, 179])
    ra_4096 = Samples("4096", [402, 398, 410, 405])
    d = decide(ra_128, [ra_4096], unit="MiB/s")
    assert d.chosen == "4096" and d.reason.startswith("4096 404 MiB/s vs 128 180 MiB/s")


def test_large_sample_counts_use_a_seeded_monte_carlo_and_stay_reproducible():
    a = [100 + (i % 7) for i in range(40)]
    b = [101 + (i % 7) for i in range(40)]
    assert permutation_p_value(b, a) == permutation_p_value(b, a)  # same seed, same answer
    assert 0.0 < permutation_p_value(b, a) < 0.5


@pytest.mark.parametrize("metric", [[1, 2], [1, 2, float("nan")], [1, 2, -3], [1, 2, "3"]])
def test_too_few_or_bad_samples_are_refused(metric):
    with pytest.raises(ValueError, match="expected"):
        Samples("none", metric)
