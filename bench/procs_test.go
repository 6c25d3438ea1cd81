package bench

import "runtime"

// testingProcs is GOMAXPROCS: RunParallel starts SetParallelism(p) × GOMAXPROCS goroutines.
func testingProcs() int { return runtime.GOMAXPROCS(0) }
