#!/usr/bin/env bash
# Every GPU check of benchmarks/README.md in one run, for a session that is lent a device.
#
# On the development machine, once (the device has torch, Lightning and pluggy but not these;
# about 36 MB of Python 3.12 wheels into .whl/, which git ignores):
#     bash benchmarks/gpu_session.sh --fetch-wheels
# On the device (carry .whl), one call with a 580 s limit:
#     bash benchmarks/gpu_session.sh
# Here, to check the script itself at tiny CPU sizes (installs nothing):
#     bash benchmarks/gpu_session.sh --cpu
#
# Output: $OUT/gpu_session.log (every command's output) and $OUT/summary.txt (one line per
# check: its exit status and seconds); OUT defaults to ./gpu_out. A failing check does not stop
# the others; each has its own time limit.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu_out}"
mkdir -p "$out"
log="$out/gpu_session.log"
summary="$out/summary.txt"
: > "$log"
: > "$summary"

if [ "${1:-}" = "--fetch-wheels" ]; then
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
    versions=$(python3 -c 'import av, simplejpeg; print(f"av=={av.__version__} simplejpeg=={simplejpeg.__version__}")')
    # shellcheck disable=SC2086
    exec python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl \
        $versions omegaconf==2.4.0 torchaug==0.3.3 importlib-metadata
fi

cpu=0
[ "${1:-}" = "--cpu" ] && cpu=1
if [ "$cpu" = 0 ] && [ -d .whl ]; then
    site=/tmp/sce-site
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .whl/*.whl \
        && python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-cache-dir --target "$site" . \
        || { echo "install failed" | tee -a "$summary"; exit 1; }
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
    export PATH="$site/bin:$PATH"
fi
export PYTHONUNBUFFERED=1

check() {  # check NAME SECONDS COMMAND...: run one check, log its output, note its status
    local name=$1 limit=$2 start status
    shift 2
    start=$(date +%s)
    echo "=== $name: $*" >> "$log"
    timeout "$limit" "$@" >> "$log" 2>&1
    status=$?
    echo "$name: exit $status, $(( $(date +%s) - start )) s" | tee -a "$summary"
}

if [ "$cpu" = 1 ]; then  # the same commands at tiny sizes on the CPU
    step=(--device cpu --batch 2 --frames 2 --size 32 --steps 1 --warmup 0 --queue 64)
    check environment 60 python3 -c "import torch, sce_core; print(torch.__version__, torch.cuda.is_available())"
    check gpu_step_fp16 120 python3 benchmarks/gpu_step.py "${step[@]}" --precision 32
    check gpu_step_compile 240 python3 benchmarks/gpu_step.py "${step[@]}" --precision 32 --compile
    check gpu_decode 120 python3 benchmarks/gpu_decode.py --device cpu --corpus "$out/corpus" --videos 1 --batch 2 --batches 1
    check sync_batchnorm 120 python3 benchmarks/sync_batchnorm.py --batch 2 --frames 4 --size 16 --repeats 1
    for config in pretrain_r3d18_sce_kinetics200 pretrain_r3d18_sce_kinetics200_fast; do
        check "bench_step_${config#pretrain_r3d18_sce_}" 120 sce bench step "$config" "dir.data=$out" \
            trainer.accelerator=cpu trainer.precision=32 trainer.devices=1 model.queue.size=64 \
            model.performance.compile=false --input-shape 2,32,32 --batch-size 2 --steps 1 --warmup 0 --no-progress
    done
    rm -rf "$out/corpus"
    exit 0
fi

# the limits add up to 540 s: give the call 580
check environment 30 python3 -c "import torch, sce_core; print(torch.__version__, torch.cuda.get_device_name())"
check gpu_step_fp16 90 python3 benchmarks/gpu_step.py
check gpu_step_bf16 60 python3 benchmarks/gpu_step.py --precision bf16
check gpu_step_compile 120 python3 benchmarks/gpu_step.py --compile
for config in pretrain_r3d18_sce_kinetics200 pretrain_r3d18_sce_kinetics200_fast; do  # the recipe and its fast variant
    check "bench_step_${config#pretrain_r3d18_sce_}" 50 sce bench step "$config" "dir.data=$out" \
        trainer.devices=1 --batch-size 64 --steps 10 --no-progress
done
check gpu_decode 45 python3 benchmarks/gpu_decode.py --corpus "$out/corpus"
check sync_batchnorm 25 python3 benchmarks/sync_batchnorm.py --device cuda --dtype bfloat16 --batch 64
check gpu_tests 70 python3 -m pytest -q -p no:cacheprovider tests/test_gpu_decode.py tests/test_gpu_benchmarks.py tests/test_sync_batchnorm.py
rm -rf "$out/corpus"  # only the log and the summary come back
