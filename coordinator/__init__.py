"""Launcher, supervisor, registry, barriers, metrics sink, reports and the `netmarl` CLI."""
