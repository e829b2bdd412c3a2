"""The LM side of SCA: a visual prefix in front of caption tokens, for training and decoding."""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase


class PrefixCaptioner(nn.Module):
    """Wraps a causal LM that reads ``[task tokens | projected caption queries | caption]``.

    Only ``language_project`` and ``task_tokens`` are this module's own weights; the LM is frozen
    unless ``lm_trainable``. ``task_tokens`` holds ``num_task_tokens`` rows for each name in
    ``task_names`` (in that order, as the official release stores its "recognition" and "caption"
    tokens); the prefix uses the rows of ``task``.
    """

    def __init__(
        self,
        lm: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        query_dim: int,
        num_task_tokens: int = 6,
        lm_trainable: bool = False,
        task_names: Sequence[str] = ("caption",),
        task: str = "caption",
    ):
        super().__init__()
        if task not in task_names:
            raise ValueError(
                f"MODEL.SCA.LM.TASK={task!r} is not one of "
                f"MODEL.SCA.LM.TASK_NAMES={list(task_names)}"
            )
        self.lm = lm
        self.tokenizer = tokenizer
        embeddings = lm.get_input_embeddings()
        self.language_project = nn.Linear(query_dim, embeddings.embedding_dim)
        self.num_task_tokens = num_task_tokens
        self.task_index = list(task_names).index(task)
        self.task_tokens = nn.Embedding(len(task_names) * num_task_tokens, embeddings.embedding_dim)
        with torch.no_grad():  # N(0, std of the LM's embeddings); no .item(), so meta works too
            self.task_tokens.weight.normal_().mul_(embeddings.weight.std())
        self.lm.requires_grad_(lm_trainable)
        self.lm_trainable = lm_trainable
        self.eos_token_id = tokenizer.eos_token_id
        self.pad_token_id = tokenizer.pad_token_id

    @property
    def lm_dtype(self) -> torch.dtype:
        return self.lm.get_input_embeddings().weight.dtype

    def train(self, mode: bool = True) -> "PrefixCaptioner":
        super().train(mode)
        if not self.lm_trainable:
            self.lm.eval()  # a frozen LM keeps its dropout off
        return self

    def prefix(self, queries: torch.Tensor) -> torch.Tensor:
        """(N, K, C) caption queries -> (N, T + K, d_lm) LM input prefix."""
        n = queries.shape[0]
        projected = self.language_project(queries)
        start = self.task_index * self.num_task_tokens
        rows = self.task_tokens.weight[start : start + self.num_task_tokens]
        task = rows.unsqueeze(0).expand(n, -1, -1)
        return torch.cat([task, projected], dim=1).to(self.lm_dtype)

    def encode_captions(self, captions: list[str], max_tokens: int) -> torch.Tensor:
        """Token ids, at most ``max_tokens`` of caption plus the end token, right-padded with -1."""
        ids = self.tokenizer(list(captions), add_special_tokens=False)["input_ids"]
        seqs = [row[:max_tokens] + [self.eos_token_id] for row in ids]
        out = torch.full((len(seqs), max(map(len, seqs))), -1, dtype=torch.long)
        for i, row in enumerate(seqs):
            out[i, : len(row)] = torch.tensor(row)
        return out

    def target_logits(self, prefix: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Logits that predict each target token (N, L, V); ``targets`` is -1 where padded.

        The LM computes its output layer only at the last L positions, where the labels are.
        No attention mask: the padding is on the right, so under causal attention no valid
        position sees it (and transformers' mask handling would wait for the GPU)."""
        inputs = targets.clamp(min=0)[:, :-1].to(prefix.device)
        embeds = torch.cat([prefix, self.lm.get_input_embeddings()(inputs)], dim=1)
        # positions as an index tensor, not a count: the LM then gathers a contiguous slice and its
        # output layer is one matrix product (a trailing slice is strided, and torch's matmul
        # broadcasts the (V, d) weight to every region for it)
        seq_len = embeds.shape[1]
        keep = torch.arange(seq_len - targets.shape[1], seq_len, device=prefix.device)
        out = self.lm(inputs_embeds=embeds, logits_to_keep=keep)
        return out.logits.float()

    def loss(
        self, prefix: torch.Tensor, targets: torch.Tensor, label_smoothing: float
    ) -> torch.Tensor:
        logits = self.target_logits(prefix, targets)
        labels = targets.to(logits.device).masked_fill(targets.to(logits.device) < 0, -100)
        return F.cross_entropy(
            logits.flatten(0, 1),
            labels.flatten(),
            ignore_index=-100,
            label_smoothing=label_smoothing,
        )

    @torch.no_grad()
    def generate(
        self, prefix: torch.Tensor, generation_config: GenerationConfig
    ) -> tuple[list[str], torch.Tensor]:
        """Captions for a batch of prefixes with transformers' ``generate`` (greedy or beam
        search, as configured; ``return_dict_in_generate`` and ``output_logits`` on), and each
        caption's mean token log-probability under the LM, end token included. The
        log-probabilities are the ones ``generate`` computed while decoding (its raw logits, so
        the score does not depend on logits processors); no second pass."""
        mask = torch.ones(prefix.shape[:2], dtype=torch.long, device=prefix.device)
        out = self.lm.generate(
            inputs_embeds=prefix,
            attention_mask=mask,
            generation_config=generation_config,
        )
        logits = [step.float() for step in out.logits]
        beam_indices = getattr(out, "beam_indices", None)
        if beam_indices is None:
            # each step's chosen token minus the step's log-normaliser: what
            # compute_transition_scores gives, without a log-softmax of every step's
            # whole vocabulary (3 s less for 64 regions x 20 tokens of GPT-2 on CPU)
            chosen = out.sequences[:, -len(logits) :]
            token_logp = torch.stack(
                [
                    step.gather(1, chosen[:, i, None])[:, 0] - step.logsumexp(dim=1)
                    for i, step in enumerate(logits)
                ],
                dim=1,
            )
        else:
            token_logp = self.lm.compute_transition_scores(
                out.sequences, logits, beam_indices, normalize_logits=True
            )
        sequences = out.sequences[:, : token_logp.shape[1]]
        # a caption ends at its first end token (included), or runs to the last step
        is_end = sequences == self.eos_token_id
        lengths = torch.where(is_end.any(1), is_end.int().argmax(1) + 1, sequences.shape[1])
        positions = torch.arange(sequences.shape[1], device=sequences.device)
        valid = positions[None] < lengths[:, None]
        scores = (token_logp * valid).sum(1) / lengths.clamp(min=1)
        rows = [row[:n] for row, n in zip(sequences.tolist(), lengths.tolist())]
        captions = [c.strip() for c in self.tokenizer.batch_decode(rows, skip_special_tokens=True)]
        return captions, scores
