"""sslbook: compact reference implementations for the book *Self-Supervised Learning for Computer Vision*.

Chapters import the pieces they need, for example::

    from sslbook import augment, evaluate, losses, methods, plots, profiles, train
"""
from . import augment, chapter, data, evaluate, exercises, losses, methods, networks, plots, profiles, results, train

__all__ = ["augment", "chapter", "data", "evaluate", "exercises", "losses", "methods", "networks", "plots",
           "profiles", "results", "train"]
__version__ = "0.1.0"
