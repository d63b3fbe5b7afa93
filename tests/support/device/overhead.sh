# #18's overhead comparison with enough trials to be tested: six scenarios interleaved, ten
# trials each (a trial took about 6.5 s on the H100), then the comparison against bare metal.
# Device run `bash tests/support/device/overhead.sh`, carry .whl and vendor-cache.
source tests/support/device/lib.sh
DEADLINE=570
step setup 30 'python3 -m tests.support.hami; nvidia-smi --query-gpu=name,driver_version --format=csv'
SC="bare-metal bare-metal-proxy bare-metal-proxy-mem bare-metal-proxy-sm50 bare-metal-mps bare-metal-mps50"
TAILN=10 step overhead_run 470 "$G run $SC --trials 10 --duration 0.5 --warmup 0.2 --repeats 3 --workloads roundtrip,launch --seed 7"
TAILN=60 step overhead_compare 30 "$G compare $(printf '@%s ' $SC) --metrics ops_per_s,lat_p99"
finish
