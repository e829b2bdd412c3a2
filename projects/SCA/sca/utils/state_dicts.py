"""Comparing a checkpoint's tensors with a model's, for errors that name every problem."""

from collections.abc import Mapping

import torch


def key_problems(
    found: Mapping[str, torch.Tensor],
    expected: Mapping[str, torch.Tensor],
    found_name: str = "checkpoint",
    prefix: str = "",
    limit: int = 10,
) -> list[str]:
    """Missing, unexpected and mis-shaped keys of ``found`` against ``expected`` (a model's
    state dict); empty when they fit exactly. ``prefix`` is prepended to the names shown."""
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    shapes = [
        f"{prefix}{k}: {found_name} {tuple(found[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in found and found[k].shape != v.shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys ({len(missing)}): {[prefix + k for k in missing[:limit]]}")
    if extra:
        problems.append(f"unexpected keys ({len(extra)}): {[prefix + k for k in extra[:limit]]}")
    if shapes:
        problems.append("shape mismatch: " + "; ".join(shapes[:5]))
    return problems
