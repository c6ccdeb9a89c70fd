"""Methods: each turns a training batch into a loss; the one loop in ``sslbook.train`` does the rest."""
from .simclr import SimCLR
from .supervised import Supervised

__all__ = ["SimCLR", "Supervised"]
