"""AdamW over the trainable parameters only (fused on CUDA), with whole-model gradient-norm
clipping."""

import torch
from detectron2.config import CfgNode
from detectron2.solver import get_default_optimizer_params
from detectron2.solver.build import maybe_add_gradient_clipping
from torch import nn


def _with_full_model_clipping(optimizer_cls: type, max_norm: float) -> type:
    """An optimizer class whose ``step`` first clips the global gradient norm of all its
    parameters (as the paper's recipe does), not each tensor separately."""

    class FullModelClipped(optimizer_cls):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            # a fused optimizer would take the AMP gradient scale into its own kernel; the norm
            # must be clipped on unscaled gradients, so the GradScaler unscales them first
            self._step_supports_amp_scaling = False

        def step(self, closure=None):
            params = [p for group in self.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, max_norm)
            return super().step(closure=closure)

    FullModelClipped.__name__ = f"FullModelClipped{optimizer_cls.__name__}"
    return FullModelClipped


def build_sca_optimizer(cfg: CfgNode, model: nn.Module) -> torch.optim.Optimizer:
    """SOLVER.OPTIMIZER "ADAMW" (paper) or "SGD"; weight decay off for norms and biases."""
    params = get_default_optimizer_params(
        model,
        base_lr=cfg.SOLVER.BASE_LR,
        weight_decay=cfg.SOLVER.WEIGHT_DECAY,
        weight_decay_norm=cfg.SOLVER.WEIGHT_DECAY_NORM,
        weight_decay_bias=cfg.SOLVER.WEIGHT_DECAY_BIAS,
    )
    if not params:
        raise ValueError("the model has no trainable parameter: check MODEL.SCA.*.TRAIN* keys")
    name = cfg.SOLVER.OPTIMIZER.upper()
    if name == "ADAMW":
        # fused: one kernel for all tensors instead of a launch per operation and tensor group
        fused = all(p.is_cuda for group in params for p in group["params"])
        cls, kwargs = torch.optim.AdamW, {"betas": tuple(cfg.SOLVER.BETAS), "fused": fused}
    elif name == "SGD":
        cls, kwargs = torch.optim.SGD, {"momentum": cfg.SOLVER.MOMENTUM, "nesterov": True}
    else:
        raise ValueError(f"SOLVER.OPTIMIZER={cfg.SOLVER.OPTIMIZER!r}: expected ADAMW or SGD")
    clip = cfg.SOLVER.CLIP_GRADIENTS
    if clip.ENABLED and clip.CLIP_TYPE == "full_model":
        cls = _with_full_model_clipping(cls, clip.CLIP_VALUE)
    else:
        cls = maybe_add_gradient_clipping(cfg, cls)
    return cls(params, lr=cfg.SOLVER.BASE_LR, **kwargs)
