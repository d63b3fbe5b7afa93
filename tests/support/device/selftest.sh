# The GPU self-test at its defaults, at most 5 blocks (about 8 minutes on an H100: 11 s a
# session), its summary and saved arms brought back. Device run `bash
# tests/support/device/selftest.sh`, carry .whl.
source tests/support/device/lib.sh
DEADLINE=575
TAILN=40 step selftest_default 565 "$G selftest --backend cupy --max-trials 5 --json $LOGS/selftest.json"
finish
