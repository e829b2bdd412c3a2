"""SCA's DefaultTrainer: its model, data, evaluators, optimiser, checkpoints and CPU/DDP fixes."""

import logging
import os
import weakref
from collections import OrderedDict

import torch
from detectron2.config import CfgNode
from detectron2.engine import AMPTrainer, DefaultTrainer, SimpleTrainer, TrainerBase, hooks
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger
from torch import nn

from ..checkpoint import SCACheckpointer
from ..data import build_sca_test_loader, build_sca_train_loader
from ..data.stream import NamedWorkerFailures
from ..evaluation import build_sca_evaluator
from .anything_eval import evaluate_anything
from .distributed import amp_precision, create_ddp_model, limit_cpu_threads
from .nonfinite import NonFiniteLossGuard
from .optim import build_sca_optimizer
from .preemption import PreemptionHook
from .visualize import save_visualizations


class SCATrainer(DefaultTrainer):
    """Detectron2's DefaultTrainer with SCA's parts. Differences from the stock trainer: DDP
    without ``device_ids`` on CPU (gloo), AMP only where CUDA is, checkpoints without frozen
    weights (written atomically), a training stream that resumes exactly where it stopped, a
    stop with a checkpoint at the first NaN/inf loss on any rank, and one at a preemption signal
    (docs/RELIABILITY.md)."""

    def __init__(self, cfg: CfgNode):
        TrainerBase.__init__(self)
        if not logging.getLogger("detectron2").isEnabledFor(logging.INFO):
            setup_logger()
        limit_cpu_threads()
        cfg = DefaultTrainer.auto_scale_workers(cfg, comm.get_world_size())

        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        # a loader worker that dies is reported with the image it was mapping
        data_loader = NamedWorkerFailures(self.build_train_loader(cfg), self._stream)
        model = create_ddp_model(model, broadcast_buffers=False)
        precision = amp_precision(cfg.SOLVER.AMP.ENABLED, cfg.SOLVER.AMP.PRECISION)
        if precision is None:
            self._trainer = SimpleTrainer(model, data_loader, optimizer)
        else:
            self._trainer = AMPTrainer(model, data_loader, optimizer, precision=precision)

        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = SCACheckpointer(
            model,
            cfg.OUTPUT_DIR,
            save_frozen=cfg.MODEL.SCA.CHECKPOINT_FROZEN_WEIGHTS,
            trainer=weakref.proxy(self),
        )
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.cfg = cfg
        self.register_hooks(self.build_hooks())

    def resume_or_load(self, resume: bool = True) -> None:
        super().resume_or_load(resume=resume)
        # continue the training stream at the first sample this rank has not used yet
        per_rank = self.cfg.SOLVER.IMS_PER_BATCH // comm.get_world_size()
        self._stream.start = self.start_iter * per_rank

    def build_hooks(self) -> list:
        """Detectron2's hooks, the NaN/inf guard first, and the preemption hook after the
        periodic checkpointer (the LR scheduler has stepped, the periodic file is written) and
        before evaluation (a stop does not wait for it)."""
        ret = [NonFiniteLossGuard(), *super().build_hooks()]
        at = next(i for i, h in enumerate(ret) if isinstance(h, hooks.EvalHook))
        ret.insert(at, PreemptionHook(self.cfg.CLUSTER.PREEMPTION_SIGNALS))
        return ret

    @classmethod
    def build_model(cls, cfg: CfgNode) -> nn.Module:
        model = super().build_model(cfg)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in model.parameters())
        logging.getLogger(__name__).info(
            "Trainable parameters: %.2fM of %.2fM", trainable / 1e6, total / 1e6
        )
        return model

    @classmethod
    def build_optimizer(cls, cfg: CfgNode, model: nn.Module) -> torch.optim.Optimizer:
        return build_sca_optimizer(cfg, model)

    def build_train_loader(self, cfg: CfgNode):
        """The resumable training stream of ``DATASETS.TRAIN``, batched by Detectron2."""
        loader = build_sca_train_loader(cfg)
        self._stream = loader.dataset
        return loader

    @classmethod
    def build_test_loader(cls, cfg: CfgNode, dataset_name: str):
        return build_sca_test_loader(cfg, dataset_name)

    @classmethod
    def build_evaluator(cls, cfg: CfgNode, dataset_name: str, output_folder: str | None = None):
        output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
        return build_sca_evaluator(cfg, dataset_name, output_folder)

    @classmethod
    def test(cls, cfg: CfgNode, model: nn.Module, evaluators=None) -> OrderedDict:
        """Detectron2's test, then with MODEL.SCA.ANYTHING.EVALUATE (and no given evaluators)
        anything mode's (:func:`~sca.engine.anything_eval.evaluate_anything`, its results under
        the task "anything"), then the pictures of TEST.SCA.NUM_VIS_IMAGES images."""
        results = super().test(cfg, model, evaluators)
        if evaluators is None and cfg.MODEL.SCA.ANYTHING.EVALUATE:
            anything = evaluate_anything(cfg, model, cls.build_test_loader)
            if len(cfg.DATASETS.TEST) == 1:  # DefaultTrainer.test returns one data set's alone
                results.update(anything.get(cfg.DATASETS.TEST[0], {}))
            else:
                for name, result in anything.items():
                    results.setdefault(name, OrderedDict()).update(result)
        if cfg.TEST.SCA.NUM_VIS_IMAGES > 0 and comm.is_main_process():
            for name in cfg.DATASETS.TEST:
                save_visualizations(
                    cfg, model, name, os.path.join(cfg.OUTPUT_DIR, "visualizations", name)
                )
        return results
