package pkitest

import (
	"os"
	"strconv"
	"testing"
)

// BenchRows is the row count of a benchmark over a large table:
// SCEPTER_BENCH_ROWS when set, else def. CI sets it small so that every
// benchmark runs once in seconds; a value that is not a positive count
// fails the benchmark rather than running it over nothing.
func BenchRows(tb testing.TB, def int) int {
	tb.Helper()
	v := os.Getenv("SCEPTER_BENCH_ROWS")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		tb.Fatalf("SCEPTER_BENCH_ROWS=%q: want a positive count", v)
	}
	return n
}
