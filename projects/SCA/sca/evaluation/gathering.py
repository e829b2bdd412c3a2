"""The per-image collection that SCA's evaluators share."""

from __future__ import annotations

from detectron2.evaluation import DatasetEvaluator

from .dataset_gt import check_image_ids, dataset_index, gather_on_main


class GatheringEvaluator(DatasetEvaluator):
    """Collects one prediction entry per image in ``_predictions`` and gathers the entries of
    all processes on the main one."""

    def __init__(
        self, dataset_name: str, output_dir: str | None = None, distributed: bool = True
    ) -> None:
        self._dataset_name = dataset_name
        self._output_dir = output_dir
        self._distributed = distributed
        self._predictions: list[dict] = []

    def reset(self) -> None:
        self._predictions = []

    def _gathered(self) -> list[dict] | None:
        """All processes' entries on the main process, None on the others."""
        return gather_on_main(self._predictions, self._distributed)

    def _gathered_with_index(self) -> tuple[list[dict], dict] | None:
        """The gathered entries and the data set's records by image id, their ids checked
        against it, on the main process; None on the others."""
        predictions = self._gathered()
        if predictions is None:
            return None
        index = dataset_index(self._dataset_name)
        check_image_ids([p["image_id"] for p in predictions], index, self._dataset_name)
        return predictions, index
