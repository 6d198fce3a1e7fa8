"""The compound term ce_weight * (B)CE: computed in the same module, its gradient left to autograd."""

from typing import Optional

import torch
from torch import Tensor

from .inputs import canonical_layout


def cross_entropy(preds: Tensor, target: Tensor, task: str, from_logits: bool, ignore_index: Optional[int]) -> Tensor:
    """The compound term: BCE (binary, multilabel) or CE over classes (multiclass), a mean over kept positions.

    Matches torch.nn.functional.binary_cross_entropy(_with_logits) and cross_entropy (nll_loss of log(p) for
    probabilities, log clamped at -100 like BCE); its gradient is left to autograd.
    """
    preds, target, mask, _ = canonical_layout(preds, target, task, ignore_index)
    preds = preds.to(target.dtype)
    if task == "multiclass":
        log_probs = torch.log_softmax(preds, dim=1) if from_logits else torch.clamp(torch.log(preds), min=-100.0)
        per_position = -(target * log_probs).sum(1, keepdim=True)
        if mask is not None:
            mask = mask.amin(1, keepdim=True)
    elif from_logits:
        per_position = torch.nn.functional.binary_cross_entropy_with_logits(preds, target, reduction="none")
    else:
        per_position = torch.nn.functional.binary_cross_entropy(preds, target, reduction="none")
    if mask is None:
        return per_position.mean()
    return (per_position * mask).sum() / torch.clamp(mask.sum(), min=1.0)
