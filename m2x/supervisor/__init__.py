"""Runs the whole stack as supervised OS processes: start in order, restart, stop cleanly."""
