"""Workflows: what users do with runs, built from the engine, the registry and the reports — the demo, lr-find,
compression and merging (and barriers) of trained models. Methods never import a workflow."""
