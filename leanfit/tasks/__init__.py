"""Built-in tasks (plug-ins of the task registry): small from-scratch classifiers (``tabular``), text
classification on a pretrained encoder (``text``) and the readers of users' data files (``files``)."""
