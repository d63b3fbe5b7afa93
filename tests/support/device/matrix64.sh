# How far a decode step's speed moves from one engine process to the next at batch 1, 8 and 64
# (the matrix's victim must not move by itself), then the interference matrix with a batch-64
# victim beside four aggressors under none, MPS 50 % and HAMi-core SM 50 %. About 4 minutes on
# an H100. Device run `bash tests/support/device/matrix64.sh`, carry .whl
# and vendor-cache.
source tests/support/device/lib.sh
DEADLINE=330
step setup 30 'python3 -m tests.support.hami; nvidia-smi --query-gpu=name,driver_version --format=csv'
TAILN=4 step decode_spread 90 "$G run bare-metal --trials 4 --duration 0.5 --warmup 0.2 --repeats 2 --workloads decode --seed 3"
TAILN=12 step decode_spread_table 20 "python3 $HERE/decode_spread.py /tmp/gb-data"
TAILN=40 step matrix64 280 "$G check --checks matrix --victims decode --victim-batch 64 --aggressors gemm,d2d,alloc,launch --layers none,mps,hami --windows 5 --window-s 0.5"
finish
