#!/usr/bin/env bash
# The GPU check of issue 19 in one run, for a session lent a GPU:
#   bash benchmarks/gpu_check.sh            # results under $OUT (default /tmp/metricc-gpu), at most 9.5 minutes,
#                                           # within the device tool's 10 minutes a command (timeout_s=600)
# It runs metricc from this tree (PYTHONPATH) with the machine's python3, which needs torch (CUDA) and triton, and
# metricc's pure-Python needs: on the device image lark and platformdirs are missing, so carry their wheels
# (`pip download --no-deps -d .whl lark platformdirs`, .whl ignored and carried) and set WHEELS=.whl.
# Stages run in order of importance, each with its own time limit, so a cut-off run still returns the first ones:
#   1. the CUDA tests: tests/test_triton.py on the GPU (not the interpreter) and tests/test_device.py;
#   2. kernel launches, time and host synchronisation per forward + backward, Triton path beside torch path
#      (benchmarks/launches.py, torch.profiler);
#   3. benchmarks/run.py --device cuda: eager contenders (naive, metricc on the Triton path, floor), then metricc on
#      the torch path (METRICC_BACKEND=torch), F1 and MCC; then the compiled contenders, F1 at N = 1e7.
# At most seven files are written to $OUT (the device tool returns eight).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/metricc-gpu}"
mkdir -p "$OUT"
unset TRITON_INTERPRET METRICC_BACKEND
export PYTHONUNBUFFERED=1
if [ -n "${WHEELS:-}" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl || exit 1
    export PYTHONPATH="$PWD:/tmp/site"
else
    export PYTHONPATH="$PWD"
fi

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"; } > "$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt"

timeout 150 python3 -m pytest tests/test_triton.py tests/test_device.py -q -p no:cacheprovider -rs > "$OUT/tests.txt" 2>&1
echo "tests: exit $?"; tail -5 "$OUT/tests.txt"

timeout 90 python3 benchmarks/launches.py > "$OUT/launches.md" 2>&1
echo "launches: exit $?"; cat "$OUT/launches.md"

timeout 150 python3 benchmarks/run.py --device cuda --sections speed --contenders acf --metrics F1,MCC --rounds 5 --budget 0.6 --output "$OUT/run_eager_triton.md" >> "$OUT/run.log" 2>&1
echo "run.py eager (Triton path): exit $?"
METRICC_BACKEND=torch timeout 90 python3 benchmarks/run.py --device cuda --sections speed --contenders c --metrics F1,MCC --rounds 5 --budget 0.6 --output "$OUT/run_eager_torch.md" >> "$OUT/run.log" 2>&1
echo "run.py eager (torch path): exit $?"
timeout 80 python3 benchmarks/run.py --device cuda --sections speed --contenders bdf --metrics F1 --only "binary N=10 000 000" --rounds 5 --budget 0.6 --output "$OUT/run_compiled.md" >> "$OUT/run.log" 2>&1
echo "run.py compiled: exit $?"
