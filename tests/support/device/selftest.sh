# The GPU self-test by its default rule, capped at 7 blocks: an H100 block took about 86 s and
# one device call may run 10 minutes. It runs in a process session of its own, so that where it
# outlasts this call, a next call on the still-warm machine reads /tmp/gb-logs/selftest.log and
# selftest.json. Device run `bash tests/support/device/selftest.sh`, carry .whl.
source tests/support/device/lib.sh
setsid nohup bash -c "$G selftest --backend cupy --max-trials 7 --json $LOGS/selftest.json \
  > $LOGS/selftest.log 2>&1" </dev/null >/dev/null 2>&1 &
for _ in $(seq 575); do [ -s $LOGS/selftest.json ] && break; sleep 1; done
tail -n 40 $LOGS/selftest.log
finish
