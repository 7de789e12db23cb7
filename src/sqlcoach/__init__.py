"""sqlcoach: train and evaluate language models that write SQL."""

__version__ = "0.1.0"
