"""Measured tuning (``fleetforge tune --measure``): what measurably wins on each host.

``decide`` holds the decision rule: which candidate replaces a rule-based value, from repeated
samples, written down with its statistics.
"""
