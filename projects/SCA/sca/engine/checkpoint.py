"""Checkpoints that hold what training changes, loaded with ``weights_only=True``."""

from detectron2.checkpoint import DetectionCheckpointer
from torch import nn


def frozen_parameter_names(model: nn.Module) -> set[str]:
    """Names of frozen parameters, tied aliases included (GPT-2's ``lm_head.weight`` is
    ``wte.weight``)."""
    return {
        n for n, p in model.named_parameters(remove_duplicate=False) if not p.requires_grad
    }


class SCACheckpointer(DetectionCheckpointer):
    """A DetectionCheckpointer that leaves frozen SAM / LM weights out of the files it writes
    (they are rebuilt from ``MODEL.SCA.SAM.CHECKPOINT`` and ``MODEL.SCA.LM``), unless
    ``save_frozen``. When loading, those weights are not reported as missing."""

    def __init__(self, model: nn.Module, save_dir: str = "", *, save_frozen: bool = False, **kw):
        super().__init__(model, save_dir, **kw)
        self.save_frozen = save_frozen
        target = model.module if hasattr(model, "module") else model
        self._frozen = frozen_parameter_names(target)

    def save(self, name: str, **kwargs) -> None:
        if self.save_frozen:
            return super().save(name, **kwargs)
        original = self.model.state_dict

        def trained_state_dict(*args, **kw):
            state = original(*args, **kw)
            prefix = "module." if hasattr(self.model, "module") else ""
            return {k: v for k, v in state.items() if k[len(prefix) :] not in self._frozen}

        self.model.state_dict = trained_state_dict
        try:
            super().save(name, **kwargs)
        finally:
            del self.model.state_dict

    def _load_model(self, checkpoint):
        incompatible = super()._load_model(checkpoint)
        if incompatible is not None:
            incompatible.missing_keys[:] = [
                k for k in incompatible.missing_keys if k not in self._frozen
            ]
        return incompatible
