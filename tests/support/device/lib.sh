# The GPU machine's side of a `device` call: sourced by the call scripts beside it, run from the
# repository root there. The machine has no network: carry `.whl/` (the wheels of everything in
# `.venv/bin/pip freeze` but numpy and nvidia-ml-py, fetched for Python 3.12 with the device
# README's `pip download` line) and `vendor-cache/` (../shared/vendor/hami-core-*.tar.gz).
# What the steps write under /tmp/gb-logs (and the runs saved in /tmp/gb-data) comes back as
# $OUT/logs.tgz.
export PYTHONUNBUFFERED=1 LOGS=/tmp/gb-logs T0=$(date +%s)
mkdir -p $LOGS
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl >$LOGS/pip.log 2>&1 || { tail -20 $LOGS/pip.log; exit 1; }
export PYTHONPATH=/tmp/site:$PWD
export GPUBENCH_GPU_LOG_DIR=$LOGS/gpu-tests
mkdir -p $GPUBENCH_GPU_LOG_DIR
HERE=tests/support/device
G="python3 -m gpubench.cli --config $HERE/config.toml"
# step NAME SECONDS CMD...: CMD under its own timeout (never past DEADLINE seconds from the
# start), its output in $LOGS/NAME.log; prints the exit code, the time and the log's tail
step() {
  local name=$1 secs=$2; shift 2
  local left=$(( ${DEADLINE:-560} - ($(date +%s) - T0) ))
  if (( left < 15 )); then echo "=== $name SKIPPED (deadline)"; return; fi
  (( secs > left )) && secs=$left
  local s=$(date +%s)
  echo "=== $name (limit ${secs}s): $*" > $LOGS/$name.log
  timeout -k 5 $secs bash -c "$*" >> $LOGS/$name.log 2>&1
  local rc=$?
  echo "=== $name rc=$rc $(( $(date +%s) - s ))s"
  tail -n ${TAILN:-15} $LOGS/$name.log | cut -c1-220
}
finish() {
  cp -r /tmp/gb-data $LOGS/data 2>/dev/null
  tar czf $OUT/logs.tgz -C /tmp gb-logs 2>/dev/null
  echo "total $(( $(date +%s) - T0 ))s"
}
