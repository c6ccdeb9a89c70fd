"""Losses of the generative methods (Part III).
"""
import math
import numbers

import torch
import torch.nn.functional as F

from ..checks import check_batch_size as _check_batch, check_ndim as _check_ndim, check_pair as _check_pair
from ..checks import check_positive as _check_positive, check_tau_plus as _check_tau_plus

__all__ = []



