"""Adapters axis: which parameters train and how (full, head-only, peft methods, our peft-compatible plug-ins)."""
from . import (baseline, bitfit, compacter, ether, houlsby, lora_xs, nola, peft_methods, share_lora,  # noqa: F401
               ssf)
