#!/usr/bin/env bash
# The GPU check of issue 19 in one run, for a session lent a GPU (CUDA torch, triton installed):
#   bash benchmarks/gpu_check.sh            # results under $OUT (default /tmp/metricc-gpu), about 8-10 minutes
# Stages run in order of importance, each with its own time limit, so a cut-off run still returns the first ones:
#   1. the CUDA tests: tests/test_triton.py on the GPU (not the interpreter) and tests/test_device.py;
#   2. kernel launches, time and host synchronisation per forward + backward, Triton path beside torch path
#      (benchmarks/launches.py, torch.profiler);
#   3. benchmarks/run.py --device cuda: eager contenders (naive, metricc on the Triton path, floor), then metricc on
#      the torch path (METRICC_BACKEND=torch), then the compiled contenders on the binary workloads.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/metricc-gpu}"
mkdir -p "$OUT"
unset TRITON_INTERPRET METRICC_BACKEND

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; python -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"; } > "$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt"

timeout 240 python -m pytest tests/test_triton.py tests/test_device.py -q -p no:cacheprovider -rs > "$OUT/tests.txt" 2>&1
echo "tests: exit $?"; tail -3 "$OUT/tests.txt"

timeout 150 python benchmarks/launches.py > "$OUT/launches.md" 2>&1
echo "launches: exit $?"; cat "$OUT/launches.md"

timeout 180 python benchmarks/run.py --device cuda --sections speed --contenders acf --rounds 7 --budget 1 --output "$OUT/run_eager_triton.md" > "$OUT/run_eager_triton.log" 2>&1
echo "run.py eager (Triton path): exit $?"
METRICC_BACKEND=torch timeout 120 python benchmarks/run.py --device cuda --sections speed --contenders ac --rounds 7 --budget 1 --output "$OUT/run_eager_torch.md" > "$OUT/run_eager_torch.log" 2>&1
echo "run.py eager (torch path): exit $?"
timeout 240 python benchmarks/run.py --device cuda --sections speed --contenders bdf --only binary --rounds 5 --budget 1 --output "$OUT/run_compiled.md" > "$OUT/run_compiled.log" 2>&1
echo "run.py compiled: exit $?"
