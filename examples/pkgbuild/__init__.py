"""Example: the pkgsrc package graph from the paexec slides (a task graph)."""
