#!/bin/bash
# SCA training on Slurm: one task per GPU, requeued when it is preempted or nears its time limit.
#
#   sbatch docs/examples/slurm_train.sh                      # configs/sca_vg.yaml, 2 nodes x 8 GPUs
#   CONFIG=configs/sca_vg_vitb.yaml OUTPUT=output/vitb sbatch --nodes 4 docs/examples/slurm_train.sh
#
# Every task runs tools/train_net.py with RANK/WORLD_SIZE/LOCAL_RANK/LOCAL_WORLD_SIZE and
# MASTER_ADDR/MASTER_PORT in its environment, which the launcher reads (env://). Five minutes
# before the time limit Slurm sends SIGUSR1 to every task (--signal); a preemption sends SIGTERM.
# Either makes all ranks stop after the same iteration, write one checkpoint and exit with 75;
# the job then requeues itself and continues with --resume (which starts from scratch when there
# is no checkpoint yet, so the same command serves the first run and every continuation).
# Run from the repository root. docs/RELIABILITY.md has the details.
#
#SBATCH --job-name=sca-vg
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=8
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=10
#SBATCH --time=24:00:00
#SBATCH --signal=USR1@300
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=slurm-%x-%j.out

CONFIG=${CONFIG:-configs/sca_vg.yaml}
OUTPUT=${OUTPUT:-output/sca_vg}
PYTHON=${PYTHON:-.venv/bin/python}

MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
export MASTER_ADDR
export MASTER_PORT=${MASTER_PORT:-29500}
export WORLD_SIZE=$SLURM_NTASKS
export CONFIG OUTPUT PYTHON

# RANK and LOCAL_RANK differ per task: set inside each task. A rank that dies makes the others
# exit within CLUSTER.COLLECTIVE_TIMEOUT_S (here 10 minutes) instead of holding the nodes.
srun bash -c '
  export RANK=$SLURM_PROCID LOCAL_RANK=$SLURM_LOCALID LOCAL_WORLD_SIZE=$SLURM_NTASKS_PER_NODE
  exec "$PYTHON" tools/train_net.py --config-file "$CONFIG" --resume \
    OUTPUT_DIR "$OUTPUT" CLUSTER.COLLECTIVE_TIMEOUT_S 600
'
status=$?

# 75: preempted, or SIGUSR1 before the time limit; the checkpoint is written. Queue again.
if [ "$status" -eq 75 ]; then
  scontrol requeue "$SLURM_JOB_ID"
fi
exit "$status"

# With torchrun instead (one task per node, torchrun starts the GPU processes), replace the srun
# line by the one below. torchrun must forward SIGUSR1 (not in its default list) and give the
# workers time to write the checkpoint before it kills them (its default is 30 s):
#
#   srun --ntasks-per-node=1 "$PYTHON" -m torch.distributed.run --nnodes "$SLURM_NNODES" \
#     --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint "$MASTER_ADDR:$MASTER_PORT" \
#     --signals-to-handle SIGTERM,SIGINT,SIGUSR1 --shutdown-timeout 300 --max-restarts 3 \
#     tools/train_net.py --config-file "$CONFIG" --resume OUTPUT_DIR "$OUTPUT"
#
# (then torchrun's own exit code is not 75 after a preemption: requeue when it is not 0).
