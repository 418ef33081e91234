#!/usr/bin/env bash
# native/cuda/gpu-check.sh: the one script to run on a machine with an NVIDIA GPU.
#
#   bash native/cuda/gpu-check.sh             # build, check, time (at most ~8 minutes: a time budget)
#   bash native/cuda/gpu-check.sh --dry-run   # (or --list) print the steps, run nothing
#   bash native/cuda/gpu-check.sh --only 'golden|bench'   # configure + build, then the matching steps
#
# No Node, no network, no ../shared: it builds the C++ core, the CUDA backend and the tools with
# CMake (+ Ninja when found) for the present GPU only (compute capability from nvidia-smi, e.g.
# 90-real on an H100 / H200), then runs, each step bounded by `timeout` and the whole run by a
# time budget (GPU_CHECK_BUDGET_S, 470 s: a step that cannot start in time is SKIPPED):
#   - the unit tests (facegan-unit: with a device, the CUDA backend end to end);
#   - the fixture goldens in fp32 / fp16 / bf16 (test/fixtures/gpu: the ../shared fixtures
#     converted by test/fixtures/gpu/make.sh), twice with graphs off (FACEGAN_CUDA_GRAPHS=0);
#   - the ProGAN fixture (the embedded weights against the tfjs outputs) in each precision;
#   - CUDA against the CPU engine on random networks (FFHQ config-f 1024², ProGAN-128, tiny);
#   - CUDA graphs on vs off, bit for bit (facegan-bench --dump, then cmp);
#   - compute-sanitizer memcheck on two small models, when compute-sanitizer is there;
#   - the engine's multiply-adds per layer of FFHQ 1024² (FACEGAN_CUDA_MACS=1, from the plan);
#   - speed: batch 1 / 8 / 32 at 1024² in fp32, fp16, bf16 (images/s and TFLOP/s);
#   - on an H100 / H200 (compute capability 9.0): the 16-bit steps run the sm_90a wgmma / TMA conv
#     (modconv_sm90.cu; required there, FACEGAN_CUDA_SM90=1), and bf16 is timed once more on the
#     mma.sync kernels (FACEGAN_CUDA_SM90=0: column cuda-mma of the speed table);
#   - when python3 has PyTorch with CUDA: bench/pytorch_stylegan2.py checked against a golden,
#     then timed on the same network (fp32, TF32, fp16 / bf16 channels-last; torch.compile when
#     enough time is left).
#
# Logs: everything under one folder, $OUT when set, else build/gpu-check: gpu-check.log (every
# step's full output, in order), summary.txt (what was printed), bench.tsv (the RESULT lines),
# and the per-step logs (steps/ when OUT is unset; steps.tar.gz, refreshed after every step, when
# OUT is set). Each step prints one line as it ends; the last line is the summary.
# Exit: 0 all passed; 1 a step failed or timed out; 2 usage; 3 no GPU (nothing was built);
# 4 no CUDA toolkit / CMake.
#
# Environment: OUT, GPU_CHECK_BUDGET_S (470), GPU_CHECK_ARCH (e.g. 90-real; default from
# nvidia-smi), GPU_CHECK_BUILD (build/gpu), GPU_CHECK_JOBS (nproc), GPU_CHECK_TORCH (auto|0),
# GPU_CHECK_TORCH_COMPILE (auto|0|1), GPU_CHECK_CMAKE_ARGS (extra configure arguments).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
ROOT=$PWD

MODE=run
ONLY=''
while [ $# -gt 0 ]; do
  case $1 in
    --dry-run | --list | -n) MODE=list ;;
    --only) [ $# -ge 2 ] || { echo "gpu-check: --only needs a regular expression" >&2; exit 2; }; ONLY=$2; shift ;;
    -h | --help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu-check: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done

LOGDIR=${OUT:-$ROOT/build/gpu-check}
BUILD=${GPU_CHECK_BUILD:-build/gpu}
BUDGET=${GPU_CHECK_BUDGET_S:-470}
JOBS=${GPU_CHECK_JOBS:-$(nproc 2>/dev/null || echo 8)}
B=$BUILD/bin
FX=test/fixtures/gpu
PROGAN_MODEL=weights/progan-celeba128.safetensors
PROGAN_OUT=test/fixtures/progan/progan-tfjs-outputs.safetensors
T0=$(date +%s)
elapsed() { echo $(( $(date +%s) - T0 )); }

# ---------------------------------------------------------------- tools and the GPU
find_tool() {  # NAME [DIR...]: first executable NAME on PATH or in the DIRs
  local n=$1 d
  shift
  command -v "$n" 2>/dev/null && return 0
  for d in "$@"; do [ -x "$d/$n" ] && { echo "$d/$n"; return 0; }; done
  return 1
}
PYBIN=$(python3 -c 'import os, sys; print(os.path.dirname(sys.executable))' 2>/dev/null || true)
CUDA_DIRS=(/usr/local/cuda/bin /usr/local/cuda-*/bin /opt/cuda/bin)
NVCC=$(find_tool nvcc "${CUDA_DIRS[@]}") || NVCC=''
[ -n "$NVCC" ] && export PATH="$(dirname "$NVCC"):$PATH"
CMAKE=$(find_tool cmake ${PYBIN:+"$PYBIN"} /usr/local/bin) || CMAKE=''
NINJA=$(find_tool ninja ${PYBIN:+"$PYBIN"} /usr/local/bin) || NINJA=''
SANITIZER=$(find_tool compute-sanitizer "${CUDA_DIRS[@]}" /usr/local/cuda/compute-sanitizer) || SANITIZER=''

NOGPU=''
GPU_NAME='' GPU_CC='' GPU_INFO=''
if ! command -v nvidia-smi > /dev/null 2>&1; then
  NOGPU='nvidia-smi not found (no NVIDIA driver on this machine)'
else
  GPU_INFO=$(timeout 30 nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version --format=csv,noheader 2>&1)
  rc=$?
  first=$(printf '%s\n' "$GPU_INFO" | head -1)
  if [ $rc -ne 0 ] || [ -z "$first" ] || ! printf '%s' "$first" | grep -Eq ', *[0-9]+\.[0-9]+ *,'; then
    NOGPU="nvidia-smi lists no usable GPU (exit $rc: $(printf '%s' "$first" | cut -c1-160))"
  else
    GPU_NAME=$(printf '%s' "$first" | cut -d, -f1 | sed 's/^ *//; s/ *$//')
    GPU_CC=$(printf '%s' "$first" | cut -d, -f2 | tr -d ' ')
  fi
fi
if [ -n "${GPU_CHECK_ARCH:-}" ]; then ARCH=$GPU_CHECK_ARCH
elif [ -n "$GPU_CC" ]; then ARCH="${GPU_CC/./}-real"
else ARCH='<from nvidia-smi, e.g. 90-real>'; fi
GEN=Ninja
[ -z "$NINJA" ] && GEN='Unix Makefiles'
# The real CUDA backend only: the CPU emulator build of the same sources (backend cuda-emu, for CI)
# is left out when CMakeLists.txt offers the switch.
EMU_OFF=''
grep -q 'option(FACEGAN_CUDA_EMU' CMakeLists.txt 2> /dev/null && EMU_OFF='-DFACEGAN_CUDA_EMU=OFF'

# Hopper (compute capability 9.0): the sm_90a wgmma / TMA conv (modconv_sm90.cu: plain 3x3 convs and
# the up-convs' phases, two blocks per SM) runs the layers it fits by default. There the 16-bit
# compare and bench steps require it (FACEGAN_CUDA_SM90=1: an error if it cannot run), the goldens
# run it too (small64-fp16's 16x16 128-channel conv and its 16->32 / 32->64 up-convs), and one
# more bench step times the mma.sync kernels on the same GPU (bf16, FACEGAN_CUDA_SM90=0, reported as
# backend cuda-mma in the speed table) for the side-by-side ratio.
SM90=''
[ "$GPU_CC" = 9.0 ] && SM90='FACEGAN_CUDA_SM90=1 '

# ---------------------------------------------------------------- the plan
NAMES=() TMOS=() REQS=() CMDS=()
add() { NAMES+=("$1"); TMOS+=("$2"); REQS+=("$3"); CMDS+=("$4"); }  # NAME TIMEOUT REQ COMMAND

add env 30 - "nvidia-smi; echo; \"${NVCC:-nvcc}\" --version; \"${CMAKE:-cmake}\" --version | head -1; echo ninja \$(\"${NINJA:-ninja}\" --version 2>&1); nproc; free -g | head -2; ${SANITIZER:+\"$SANITIZER\" --version | head -2}"
add configure 180 - "\"${CMAKE:-cmake}\" -S . -B $BUILD -G '$GEN' -DCMAKE_BUILD_TYPE=Release -DFACEGAN_CUDA=ON -DFACEGAN_TOOLS=ON -DFACEGAN_CUDA_ARCHITECTURES='$ARCH' -DCMAKE_CUDA_COMPILER='${NVCC:-nvcc}' $EMU_OFF ${GPU_CHECK_CMAKE_ARGS:-} && grep -Eq '^CMAKE_CUDA_COMPILER:[A-Z]+=.*nvcc' $BUILD/CMakeCache.txt"
add build 420 configure "\"${CMAKE:-cmake}\" --build $BUILD -j $JOBS --target facegan-unit facegan-check facegan-bench && test -f $BUILD/libfacegan_cuda.a && ls -la $B"
add unit 240 build "$B/facegan-unit"
add smoke-tinyc-vs-cpu-ref 90 cuda "$B/facegan-check --compare-backends cuda cpu-ref --random-config tinyc --batch 3"
# Fixture goldens: every NAME.safetensors (float32 weights: fp32 too) / NAME.half.safetensors
# (float16 weights: fp16 and bf16 only) in test/fixtures/gpu with its NAME.golden.*.
for f in "$FX"/*.safetensors; do
  base=$(basename "$f" .safetensors)
  case $base in *.golden) continue ;; esac
  name=${base%.half}
  [ -f "$FX/$name.golden.json" ] || continue
  precs='fp32 fp16 bf16'
  [ "$name" != "$base" ] && precs='fp16 bf16'
  for p in $precs; do
    add "golden-$name-$p" 90 cuda "$B/facegan-check --backend cuda --precision $p $f $FX/$name"
  done
done
for p in fp32 fp16; do
  add "golden-cond32-$p-graphs-off" 90 cuda "FACEGAN_CUDA_GRAPHS=0 $B/facegan-check --backend cuda --precision $p $FX/cond32.safetensors $FX/cond32"
done
for p in fp32 fp16 bf16; do
  add "progan-fixture-$p" 90 cuda "$B/facegan-check --progan --backend cuda --precision $p $PROGAN_MODEL $PROGAN_OUT"
done
add compare-ffhq1024-fp32 180 cuda "$B/facegan-check --compare-backends cuda cpu --random-config ffhq1024 --batch 2"
add compare-ffhq1024-fp16 180 cuda "${SM90}$B/facegan-check --compare-backends cuda cpu --random-config ffhq1024 --batch 2 --precision fp16 --precision-b fp32"
add compare-ffhq1024-bf16 180 cuda "${SM90}$B/facegan-check --compare-backends cuda cpu --random-config ffhq1024 --batch 2 --precision bf16 --precision-b fp32"
add compare-progan128-fp32 120 cuda "$B/facegan-check --compare-backends cuda cpu --random-config progan128 --batch 3"
# Graphs on vs off: the same calls (random noise: the seed and image offset read on the device),
# float and uint8 outputs dumped and compared bit for bit.
for p in fp32 fp16; do
  add "graphs-on-vs-off-$p" 120 cuda "d=\$(mktemp -d) && $B/facegan-bench --backend cuda --precision $p --config ffhq256 --batch 1,3 --iters 2 --noise random --dump \$d/on && FACEGAN_CUDA_GRAPHS=0 $B/facegan-bench --backend cuda --precision $p --config ffhq256 --batch 1,3 --iters 2 --noise random --dump \$d/off && cmp \$d/on \$d/off && echo \"DETAIL graphs on and off: bit-identical (\$(stat -c %s \$d/on) bytes)\"; r=\$?; rm -rf \$d; exit \$r"
done
S=${SANITIZER:-compute-sanitizer}
add memcheck-cond32-fp16 180 sanitizer "FACEGAN_CUDA_GRAPHS=0 \"$S\" --tool memcheck --error-exitcode 99 --leak-check no $B/facegan-check --backend cuda --precision fp16 $FX/cond32.safetensors $FX/cond32"
add memcheck-gray16-fp32-graphs 120 sanitizer "\"$S\" --tool memcheck --error-exitcode 99 --leak-check no $B/facegan-check --backend cuda --precision fp32 $FX/gray16.safetensors $FX/gray16"
# The multiply-adds per image of every launch, from the plan (prepare only; seconds).
add macs-ffhq1024 60 cuda "FACEGAN_CUDA_MACS=1 $B/facegan-bench --backend cuda --precision fp16 --config ffhq1024 --load-only"
for p in fp32 fp16 bf16; do
  add "bench-ffhq1024-$p" 150 cuda "${SM90}$B/facegan-bench --backend cuda --precision $p --config ffhq1024 --batch 1,8,32 --iters 5 --min-ms 1500"
done
if [ -n "$SM90" ]; then
  add bench-ffhq1024-bf16-mma 150 cuda "FACEGAN_CUDA_SM90=0 $B/facegan-bench --backend cuda --precision bf16 --config ffhq1024 --batch 1,8,32 --iters 5 --min-ms 1500 | sed 's/^RESULT backend=cuda /RESULT backend=cuda-mma /'"
fi
add bench-progan128-fp16 60 cuda "$B/facegan-bench --backend cuda --precision fp16 --config $PROGAN_MODEL --batch 1,16,64 --iters 5 --min-ms 500"
add torch-check-cond32 120 torch "PYTHONUNBUFFERED=1 python3 bench/pytorch_stylegan2.py --check $FX/cond32.safetensors $FX/cond32"
add torch-bench-ffhq1024 360 torch "PYTHONUNBUFFERED=1 python3 bench/pytorch_stylegan2.py --config ffhq1024 --batch 1,8,32 --modes fp32,tf32,fp16,bf16 --iters 5 --min-ms 1500 --budget-s \$(( GPU_CHECK_LEFT > 150 ? GPU_CHECK_LEFT - 90 : 30 )) \$(case \${GPU_CHECK_TORCH_COMPILE:-auto} in 1) echo --compile;; auto) [ \$GPU_CHECK_LEFT -gt 300 ] && echo --compile;; esac)"

# Files the steps read (they travel with the working tree; the dry run, and so CI, checks them).
MISSING=''
for f in "$PROGAN_MODEL" "$PROGAN_OUT" bench/pytorch_stylegan2.py "$FX/cond32.safetensors" "$FX/cond32.golden.json" \
         "$FX/cond32.golden.safetensors" "$FX/gray16.safetensors" "$FX/gray16.golden.json" "$FX/gray16.golden.safetensors"; do
  [ -f "$f" ] || MISSING="$MISSING $f"
done

# ---------------------------------------------------------------- --dry-run / --list
if [ $MODE = list ]; then
  echo "gpu-check plan (dry run: nothing is built or run)"
  echo "  GPU:        ${GPU_NAME:-none found here} ${GPU_CC:+(compute capability $GPU_CC)}${NOGPU:+ - a real run would stop at once: no GPU: $NOGPU}"
  echo "  build:      $BUILD, arch $ARCH, generator $GEN, -j $JOBS; nvcc ${NVCC:-NOT FOUND}; cmake ${CMAKE:-NOT FOUND}"
  echo "  logs:       $LOGDIR;  time budget ${BUDGET} s (GPU_CHECK_BUDGET_S)"
  echo "  sanitizer:  ${SANITIZER:-not found here (memcheck steps run only where it is)}"
  echo "  steps (timeout s, needs):"
  for i in "${!NAMES[@]}"; do
    n=${NAMES[$i]}
    if [ -n "$ONLY" ] && [ "$n" != env ] && [ "$n" != configure ] && [ "$n" != build ] && ! [[ $n =~ $ONLY ]]; then continue; fi
    printf '  %2d  %-30s %4s  %-9s %s\n' $((i + 1)) "$n" "${TMOS[$i]}" "${REQS[$i]}" "${CMDS[$i]}"
  done
  echo "  (needs: configure/build = an earlier step passed; cuda = build passed and no step has reported the CUDA backend unavailable; torch = python3 imports torch with CUDA; sanitizer = compute-sanitizer found)"
  if [ -n "$MISSING" ]; then echo "gpu-check: dry run: files the steps need are missing:$MISSING"; exit 1; fi
  echo "gpu-check: dry run, ${#NAMES[@]} steps listed"
  exit 0
fi

# ---------------------------------------------------------------- run
mkdir -p "$LOGDIR" || { echo "gpu-check: FAIL cannot create $LOGDIR"; exit 4; }
rm -rf "$LOGDIR/steps" "$LOGDIR/steps.tar.gz" "$LOGDIR/gpu-check.log" "$LOGDIR/summary.txt" "$LOGDIR/bench.tsv"
stop() {  # EXIT-CODE LINE: one clear line, before anything is built
  printf '%s\n' "$2" | tee "$LOGDIR/summary.txt"
  exit "$1"
}
[ -n "$NOGPU" ] && stop 3 "gpu-check: FAIL no GPU: $NOGPU; nothing was built or run (logs: $LOGDIR)"
missing=''
[ -z "$NVCC" ] && missing='nvcc (CUDA toolkit)'
[ -z "$CMAKE" ] && missing="${missing:+$missing and }cmake"
[ -n "$missing" ] && stop 4 "gpu-check: FAIL no $missing found on PATH or in /usr/local/cuda*/bin; nothing was built (GPU: $GPU_NAME)"

STEPS_DIR=$LOGDIR/steps
[ -n "${OUT:-}" ] && STEPS_DIR=$(mktemp -d)
mkdir -p "$STEPS_DIR"

main() {
[ -n "$MISSING" ] && echo "gpu-check: warning: files the steps need are missing:$MISSING"
echo "gpu-check: $GPU_NAME (compute capability $GPU_CC), arch $ARCH; $(printf '%s\n' "$GPU_INFO" | head -1 | cut -d, -f3-4 | sed 's/^ *//'); ${JOBS} jobs; budget ${BUDGET} s; logs $LOGDIR"

TORCH_OK=0
TORCH_NOTE='not probed'
if [ "${GPU_CHECK_TORCH:-auto}" = 0 ]; then TORCH_NOTE='off (GPU_CHECK_TORCH=0)'
elif ! command -v python3 > /dev/null 2>&1; then TORCH_NOTE='no python3'
fi
probe_torch() {
  local out
  out=$(timeout 90 python3 -c 'import torch; print(torch.__version__, torch.cuda.is_available())' 2>&1 | tail -1)
  case $out in
    *' True') TORCH_OK=1; TORCH_NOTE="torch $out" ;;
    *' False') TORCH_NOTE="torch without CUDA ($out)" ;;
    *) TORCH_NOTE="python3 has no torch: $(printf '%s' "$out" | cut -c1-120)" ;;
  esac
}

declare -A DONE=()  # step name -> PASS / FAIL / TIMEOUT / SKIP
CUDA_UNAVAILABLE=''
NPASS=0 NFAIL=0 NTIME=0 NSKIP=0
SUMMARY_ROWS=()
pack_logs() { [ -n "${OUT:-}" ] && tar -czf "$LOGDIR/steps.tar.gz" -C "$STEPS_DIR" . 2> /dev/null; return 0; }

run_step() {  # INDEX
  local i=$1 name=${NAMES[$1]} tmo=${TMOS[$1]} req=${REQS[$1]} cmd=${CMDS[$1]}
  local now left t log status detail rc start dur
  now=$(elapsed)
  left=$((BUDGET - now))
  local skip=''
  case $req in
    -) ;;
    sanitizer)
      if [ -z "$SANITIZER" ]; then skip='no compute-sanitizer on PATH or in /usr/local/cuda*/bin'
      elif [ "${DONE[build]:-}" != PASS ]; then skip='build did not pass'
      elif [ -n "$CUDA_UNAVAILABLE" ]; then skip="no CUDA backend: $CUDA_UNAVAILABLE"; fi ;;
    torch)
      [ "$TORCH_NOTE" = 'not probed' ] && probe_torch
      [ $TORCH_OK = 1 ] || skip=$TORCH_NOTE ;;
    cuda)
      if [ "${DONE[build]:-}" != PASS ]; then skip='build did not pass'
      elif [ -n "$CUDA_UNAVAILABLE" ]; then skip="no CUDA backend: $CUDA_UNAVAILABLE"; fi ;;
    *) [ "${DONE[$req]:-}" = PASS ] || skip="$req did not pass" ;;
  esac
  [ -z "$skip" ] && [ -n "${DONE[build]:-}" ] && [ "${DONE[build]}" != PASS ] && [ "$req" != - ] && [ "$req" != torch ] && skip='build did not pass'
  [ -z "$skip" ] && [ $left -lt 15 ] && skip="time budget (${BUDGET} s) spent"
  if [ -n "$skip" ]; then
    printf '[%3ds] %-32s SKIP     %s\n' "$now" "$name" "$skip"
    DONE[$name]=SKIP
    NSKIP=$((NSKIP + 1))
    SUMMARY_ROWS+=("$name	SKIP	0	$skip")
    return
  fi
  t=$((tmo < left ? tmo : left))
  log=$STEPS_DIR/$(printf '%02d' $((i + 1)))-$name.log
  printf '### %s (timeout %ss, started at +%ss)\n### %s\n' "$name" "$t" "$now" "$cmd" > "$log"
  start=$(date +%s%N)
  GPU_CHECK_LEFT=$left timeout -k 10 "$t" bash -o pipefail -c "$cmd" >> "$log" 2>&1 < /dev/null
  rc=$?
  dur=$(( ($(date +%s%N) - start) / 1000000 ))
  case $rc in
    0) status=PASS; NPASS=$((NPASS + 1)) ;;
    124 | 137) status=TIMEOUT; NTIME=$((NTIME + 1)) ;;
    *) status=FAIL; NFAIL=$((NFAIL + 1)) ;;
  esac
  DONE[$name]=$status
  # The backend says why it cannot run at all (no driver, too old a driver, no device): the CUDA
  # steps after this one are skipped with that reason instead of each failing with it.
  if [ $status = FAIL ] && [ -z "$CUDA_UNAVAILABLE" ] && grep -q 'backend cuda is not available' "$log"; then
    CUDA_UNAVAILABLE=$(grep -m1 -o 'backend cuda is not available.*' "$log" | sed 's/^backend cuda is not available: *//' | cut -c1-160)
  fi
  printf '### exit %s (%s) after %s ms\n\n' "$rc" "$status" "$dur" >> "$log"
  # One line of detail: the tool's own summary when it prints one.
  detail=$(grep -E '^(summary:|self-test summary:|pytorch-check|DETAIL |[0-9]+ passed, [0-9]+ failed)' "$log" | tail -1 | sed 's/^DETAIL //')
  [ -z "$detail" ] && [ $status = TIMEOUT ] && detail="timed out after ${t} s"
  [ -z "$detail" ] && [ $status = FAIL ] && detail="exit $rc: $(grep -m1 -E '^facegan-[a-z]+: |[Ee]rror' "$log" | cut -c1-160)"
  printf '[%3ds] %-32s %-8s %6.1fs  %s\n' "$now" "$name" "$status" "$(awk -v d="$dur" 'BEGIN{printf "%.1f", d/1000}')" "$detail"
  SUMMARY_ROWS+=("$name	$status	$dur	$detail")
  # Partial results as they come: bench lines, and what failed.
  if [[ $name == *bench* ]] && grep -q '^RESULT ' "$log"; then
    grep '^RESULT ' "$log" >> "$LOGDIR/bench.tsv"
    grep -E '^(batch |[a-z0-9+-]+ +batch )' "$log" | sed 's/^/          /'
  fi
  if [ $status != PASS ]; then
    { grep -E '^(FAIL|=+ (ERROR|Invalid)|.*[Ee]rror)' "$log" | head -8; tail -n 4 "$log" | grep -Ev '^(###|PASS|[[:space:]]*$)'; } | awk '!seen[$0]++' | head -10 | cut -c1-220 | sed 's/^/          | /'
  fi
  head -c 4000000 "$log" >> "$LOGDIR/gpu-check.log"  # (the files that come back are limited in size)
  [ "$(stat -c %s "$log")" -gt 4000000 ] && printf '\n### (cut at 4 MB: the whole log is in the per-step logs)\n' >> "$LOGDIR/gpu-check.log"
  pack_logs
}

for i in "${!NAMES[@]}"; do
  n=${NAMES[$i]}
  if [ -n "$ONLY" ] && [ "$n" != env ] && [ "$n" != configure ] && [ "$n" != build ] && ! [[ $n =~ $ONLY ]]; then continue; fi
  run_step "$i"
done

# ---------------------------------------------------------------- tables and the summary line
if grep -q 'config=ffhq1024 res=1024 ' "$LOGDIR/bench.tsv" 2> /dev/null; then
  echo
  echo "speed at 1024² (FFHQ config-f, random weights; images/s and TFLOP/s at 74.3 GMAC/image; wall clock per call, ws upload and uint8 download included):"
  awk '
    { delete kv; for (i = 2; i <= NF; i++) { split($i, a, "="); kv[a[1]] = a[2] }
      if (kv["res"] != 1024 || kv["config"] != "ffhq1024") next
      col = kv["backend"] " " kv["precision"]; b = kv["batch"] + 0
      if (!(col in seen)) { seen[col] = 1; cols[++nc] = col }
      if (!(b in bseen)) { bseen[b] = 1; bs[++nb] = b }
      cell[col, b] = sprintf("%.1f (%.1f)", kv["img_s"], kv["tflops"]) }
    END {
      printf "  %-6s", "batch"; for (c = 1; c <= nc; c++) printf " %18s", cols[c]; printf "\n"
      for (i = 1; i <= nb; i++) for (j = i + 1; j <= nb; j++) if (bs[j] < bs[i]) { t = bs[i]; bs[i] = bs[j]; bs[j] = t }
      for (i = 1; i <= nb; i++) { printf "  %-6d", bs[i]; for (c = 1; c <= nc; c++) printf " %18s", ((cols[c], bs[i]) in cell) ? cell[cols[c], bs[i]] : "-"; printf "\n" }
    }' "$LOGDIR/bench.tsv"
fi
echo
echo "steps: $NPASS passed, $NFAIL failed, $NTIME timed out, $NSKIP skipped (PyTorch: $TORCH_NOTE)"
shown=0
for r in "${SUMMARY_ROWS[@]}"; do
  case $r in *'	FAIL	'* | *'	TIMEOUT	'*) ;; *) continue ;; esac
  shown=$((shown + 1))
  [ $shown -le 12 ] && printf '  not passed: %s\n' "$(printf '%s' "$r" | cut -f1,2,4 | tr '\t' ' ' | cut -c1-200)"
done
[ $shown -gt 12 ] && echo "  ... and $((shown - 12)) more (summary.txt has every step)"
[ $NSKIP -gt 0 ] && printf '%s\n' "${SUMMARY_ROWS[@]}" | awk -F'\t' '$2 == "SKIP" { n[$4]++ } END { for (r in n) printf "  skipped: %d step(s): %s\n", n[r], r }'
verdict=PASS
[ $((NFAIL + NTIME)) -gt 0 ] && verdict=FAIL
pack_logs
echo "gpu-check: $verdict  $NPASS passed, $NFAIL failed, $NTIME timed out, $NSKIP skipped  ($GPU_NAME, arch $ARCH, $(elapsed) s; logs $LOGDIR)"
[ $verdict = PASS ]
}

main 2>&1 | tee "$LOGDIR/summary.txt"
exit "${PIPESTATUS[0]}"
