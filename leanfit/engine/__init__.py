"""The engine: tasks, recipes, the registry, the Trainer and its meters, results and their store.

It imports nothing from the plug-ins (``leanfit.methods``, ``leanfit.tasks``) or the application
(``leanfit.study``, ``report``, ``workflows``, ``cli``); the registry finds plug-ins by discovery (registry.py).
Importing this package imports no torch.
"""
__version__ = "0.1.0"
