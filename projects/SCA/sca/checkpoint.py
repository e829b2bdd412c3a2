"""Checkpoints that hold what training changes: written atomically, read without running code.

Writing: every file (the ``.pth`` and Detectron2's ``last_checkpoint`` tag) goes through
:func:`~sca.utils.atomic_file.atomic_write`: a temporary file beside its target, flushed and
fsync'ed, renamed over the target (atomic on POSIX file systems), then the folder fsync'ed. A
process killed at any point leaves either the old file or the new one, never a truncated one;
``last_checkpoint`` is tagged only after its checkpoint is complete. A kill mid-write leaves a
``.<name>.pth.<random>.tmp`` file, removed by the next successful save of that name.

Reading: ``torch.load(weights_only=True)`` for every file, whatever
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` says; ``.pkl`` and ``.pyth`` files (which Detectron2 unpickles
without restriction) are refused. A file whose unpickling would import or call anything other
than tensors and plain containers is refused with :class:`UnsafeCheckpointError`.
"""

from __future__ import annotations

import glob
import os

import torch
from detectron2.checkpoint import DetectionCheckpointer
from torch import nn

from .utils.atomic_file import atomic_write
from .utils.safe_load import UnsafeCheckpointError, safe_torch_load


def frozen_parameter_names(model: nn.Module) -> set[str]:
    """Names of frozen parameters, tied aliases included (GPT-2's ``lm_head.weight`` is
    ``wte.weight``)."""
    return {n for n, p in model.named_parameters(remove_duplicate=False) if not p.requires_grad}


class SCACheckpointer(DetectionCheckpointer):
    """A DetectionCheckpointer that leaves frozen SAM / LM weights out of the files it writes
    (they are rebuilt from ``MODEL.SCA.SAM.CHECKPOINT`` and ``MODEL.SCA.LM``), unless
    ``save_frozen``, writes files atomically and loads them safely (module doc). When loading,
    frozen weights are not reported as missing."""

    def __init__(self, model: nn.Module, save_dir: str = "", *, save_frozen: bool = False, **kw):
        super().__init__(model, save_dir, **kw)
        self.save_frozen = save_frozen
        target = model.module if hasattr(model, "module") else model
        self._frozen = frozen_parameter_names(target)

    def _saved_state_dict(self) -> dict:
        state = self.model.state_dict()
        if self.save_frozen:
            return state
        prefix = "module." if hasattr(self.model, "module") else ""
        return {k: v for k, v in state.items() if k[len(prefix) :] not in self._frozen}

    def save(self, name: str, **kwargs) -> None:
        """fvcore's ``Checkpointer.save`` (same file content), written atomically."""
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self._saved_state_dict()}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        data.update(kwargs)
        basename = f"{name}.pth"
        save_file = os.path.join(self.save_dir, basename)
        self.logger.info("Saving checkpoint to %s", save_file)
        with atomic_write(save_file) as f:
            torch.save(data, f)
        self.tag_last_checkpoint(basename)
        # temporary files of this name left by a writer that was killed
        for stale in glob.glob(os.path.join(glob.escape(self.save_dir), f".{basename}.*.tmp")):
            os.unlink(stale)

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        with atomic_write(os.path.join(self.save_dir, "last_checkpoint"), "w") as f:
            f.write(last_filename_basename)

    def _load_file(self, filename: str) -> dict:
        if filename.endswith((".pkl", ".pyth")):  # Detectron2 would unpickle these unrestricted
            raise UnsafeCheckpointError(
                f"Refusing to load {filename}: Detectron2 reads .pkl and .pyth files with an "
                "unrestricted unpickler, which can execute code. SCA checkpoints are .pth files "
                "saved with torch.save."
            )
        return super()._load_file(filename)

    def _torch_load(self, f: str) -> dict:
        data = safe_torch_load(f)
        if not isinstance(data, dict):
            raise ValueError(f"{f}: expected a state dict or a checkpoint dict, got {type(data)}")
        return data

    def _load_model(self, checkpoint):
        incompatible = super()._load_model(checkpoint)
        if incompatible is not None:
            incompatible.missing_keys[:] = [
                k for k in incompatible.missing_keys if k not in self._frozen
            ]
        return incompatible
