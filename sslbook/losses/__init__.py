"""Loss functions of the book, one small pure function per equation, in modules by family.

Each function sits right after a comment block that shows its equation in the
notation of the survey the book follows (Zheng 2022). Every function returns a
scalar tensor on the device and in the dtype of its inputs; unless stated
otherwise it is the mean over anchors (samples) of the per-anchor loss.
``from sslbook import losses`` gives every loss by name (``losses.nt_xent``).
"""
from .contrastive import *  # noqa: F401,F403
from .contrastive import _debiased_loss_from_logits  # noqa: F401 (shown in the debiased chapter)
from .generative import *  # noqa: F401,F403
from .nce import *  # noqa: F401,F403
from .non_contrastive import *  # noqa: F401,F403
from .pretext import *  # noqa: F401,F403
