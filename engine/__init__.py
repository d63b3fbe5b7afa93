"""gpubench benchmark engine: run on a GPU host as `python -m engine`.

Standalone: depends on numpy, cupy and nvidia-ml-py only, never on the rest of gpubench.
"""
__version__ = "0.1.0"
