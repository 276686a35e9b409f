"""Slurm over SSH: pure parsers and command builders, job scripts, a sync client and a shared async poller.

Layout follows the Airflow SSH provider: :mod:`.client` is the connection (hook-like, sync, used by
operators), :mod:`.poller` the async wait shared by triggers, and everything else is pure and
unit-tested on recorded Slurm output.
"""
