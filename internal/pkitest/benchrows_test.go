package pkitest

import "testing"

func TestBenchRows(t *testing.T) {
	t.Setenv("SCEPTER_BENCH_ROWS", "")
	if got := BenchRows(t, 100); got != 100 {
		t.Errorf("unset: %d, want the default 100", got)
	}
	t.Setenv("SCEPTER_BENCH_ROWS", "2500")
	if got := BenchRows(t, 100); got != 2500 {
		t.Errorf("SCEPTER_BENCH_ROWS=2500: %d", got)
	}
	// A value that is not a positive count fails the benchmark; that path
	// is run by `SCEPTER_BENCH_ROWS=x go test -bench` (it must not run
	// over zero rows, as the list API's benchmark once did).
}
