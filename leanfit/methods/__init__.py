"""Method plug-ins, one package per axis: adapters, compress, optim, data, merge."""
from .base import Adapter, Compressor, DataSelector, Merger, OptimMethod, trainable_named_parameters

__all__ = ["Adapter", "Compressor", "DataSelector", "Merger", "OptimMethod", "trainable_named_parameters"]
