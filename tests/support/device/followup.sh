# What the 2026-12-07 session could not measure for lack of device time, in one call of about
# 9 minutes: device run `bash tests/support/device/followup.sh`, carry .whl and vendor-cache.
source tests/support/device/lib.sh
DEADLINE=570
step setup 30 'python3 -m tests.support.hami; nvidia-smi --query-gpu=name,driver_version --format=csv'
# #18: HAMi's SM limit without the force policy, one tenant and two, on the four-wave grid
TAILN=30 step compute_hami_default 95 "$G check --checks compute --proxy hami --compute-fraction 0.5 --seconds 6 --tenant-limits 25,75"
# #19: the matrix with the victim alone before and after its pairs
TAILN=40 step matrix 160 "$G check --checks matrix --victims decode --aggressors gemm,launch --layers none,mps,hami --windows 5 --window-s 0.5"
# #15: the roundtrip's shortfall with and without a base wait
TAILN=30 step selftest_base0 130 "$G selftest --backend cupy --workloads roundtrip --duration 1.5 --repeats 2 --no-save"
TAILN=30 step selftest_base10us 130 "$G selftest --backend cupy --workloads roundtrip --duration 1.5 --repeats 2 --base-wait 10000 --no-save"
finish
