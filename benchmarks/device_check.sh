#!/usr/bin/env bash
# The GPU path in one go, under 5 minutes on one GPU: run it whenever a GPU is available and
# paste its summary into the issue.  Without a GPU it runs the same checks on the CPU, smaller
# (the fallback), so the script itself stays tested.
#
#   benchmarks/device_check.sh [--cpu]        # --cpu: the fallback even when a GPU is visible
#
# Checks, one summary line each (PASS/FAIL/SKIP, seconds, the check's last output line):
#   1. tests      the device tests (tests/realdata/test_device.py: bounds, Directions, resume,
#                 evaluation on the device) and the CPU-mocked GPU tests (TF32, checkpoints, chunks)
#   2-4. train    one epoch each of AT, COAP (random projections) and CROWN-IBP on the CIFAR-10
#                 subset with --device cuda (quick recipe; the fallback: 200 images, 50 test)
#   5. bounds     every bound method on the device equals the CPU's to 1e-5 (benchmarks.device_bounds)
#   6. torchrun   two processes (NCCL) when two GPUs exist; the fallback: two gloo processes
# Logs: $DEVICE_CHECK_LOGS (default: a fresh temporary folder), named in the last line.
set -uo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}

gpus=$(python -c "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)")
[[ "${1:-}" == "--cpu" ]] && gpus=0
logs=${DEVICE_CHECK_LOGS:-$(mktemp -d -t device-check.XXXXXX)}
mkdir -p "$logs"
out="$logs/results"
if (( gpus > 0 )); then
    device=cuda; sizes=(); images=64; mode="GPU ($gpus visible)"
else
    device=cpu; sizes=(--train-size 200 --test-size 50 --eval-steps 5); images=8; mode="CPU fallback (no GPU)"
fi
failed=0
began=$SECONDS

check() {  # check NAME LIMIT_SECONDS COMMAND...: run it, print one line
    local name=$1 limit=$2; shift 2
    local start=$SECONDS status
    timeout "$limit" "$@" >"$logs/$name.log" 2>&1
    status=$?
    local last
    last=$(grep -v '^\s*$' "$logs/$name.log" | tail -n 1 | cut -c1-150)
    if (( status == 0 )); then
        printf '%-4s %-16s %4ds  %s\n' PASS "$name" $((SECONDS - start)) "$last"
    else
        (( status == 124 )) && last="timed out after ${limit}s"
        printf '%-4s %-16s %4ds  %s\n' FAIL "$name" $((SECONDS - start)) "$last"
        failed=1
    fi
}

echo "device_check: $mode, torch $(python -c 'import torch; print(torch.__version__)')"
check tests 120 python -m pytest -q -p no:cacheprovider tests/realdata/test_device.py \
    tests/realdata/test_precision.py tests/realdata/test_checkpoint.py tests/realdata/test_chunk_budget.py
for method in at coap crown-ibp; do
    extra=(); [[ $method == coap ]] && extra=(--proj 50)
    check "train-$method" 150 python -m realdata.train --dataset cifar10 --method "$method" --norm l2 --eps 36/255 \
        --epochs 1 --device "$device" --out "$out" --force --quiet "${sizes[@]}" "${extra[@]}"
done
check bounds 120 python -m benchmarks.device_bounds --device "$device" --images "$images"
if (( gpus >= 2 || gpus == 0 )); then
    check torchrun-2 180 python -m torch.distributed.run --standalone --nproc_per_node 2 -m realdata.train \
        --dataset cifar10 --method crown-ibp --norm l2 --eps 36/255 --epochs 1 --device "$device" \
        --out "$out/torchrun" --force --quiet "${sizes[@]}"
else
    printf '%-4s %-16s %4ds  %s\n' SKIP torchrun-2 0 "one GPU visible; two are needed"
fi
echo "device_check: $([[ $failed == 0 ]] && echo 'all passed' || echo 'FAILED') in $((SECONDS - began))s; logs in $logs"
exit $failed
