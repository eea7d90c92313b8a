package sqlite

import (
	"context"
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/store"
)

// BenchmarkSearchIndex indexes certificates recorded meanwhile as the
// indexer does, and merges the index: in transactions of searchIndexBatch
// certificates and searchMergePages pages ("steps"), or, for comparison,
// as before, in transactions of 1000 with FTS5's own merging ("automerge").
// ns/op is per certificate, cpu-us/cert the CPU of the indexing goroutine
// per certificate, max-tx-ms its longest transaction (the enrollments
// queued behind one wait for it), and tx>5ms how many took longer than 5
// ms, all in CPU time of its thread, which other processes do not inflate.
func BenchmarkSearchIndex(b *testing.B) {
	for _, mode := range []string{"steps", "automerge"} {
		b.Run(mode, func(b *testing.B) {
			s := openTemp(b)
			s.stopSearchIndexer()
			ctx := context.Background()
			batch := searchIndexBatch
			if mode == "automerge" {
				batch = 1000
				if _, err := s.w.ExecContext(ctx, `INSERT INTO certificates_search (certificates_search, rank) VALUES ('automerge', 4)`); err != nil {
					b.Fatal(err)
				}
			}
			for i := range b.N {
				c := testCert(fmt.Sprintf("%040x", i))
				c.Subject = fmt.Sprintf("CN=device-%07d.fleet.corp.example,OU=Devices,O=Example Corp,C=US", i)
				c.SANs = []string{fmt.Sprintf("dns:device-%07d.fleet.corp.example", i)}
				if err := s.RecordIssuance(ctx, store.Issuance{Certificate: c, Now: t0}); err != nil {
					b.Fatal(err)
				}
			}
			// Each write's function runs on this goroutine (group commit:
			// the caller leads a batch of one), so this thread's CPU time is
			// its work.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			var longest time.Duration
			var over5 int
			timed := func(fn txFunc) {
				start := threadCPU(b)
				if err := s.withOrderedTx(ctx, fn); err != nil {
					b.Fatal(err)
				}
				d := threadCPU(b) - start
				longest = max(longest, d)
				if d > 5*time.Millisecond {
					over5++
				}
			}
			b.ResetTimer()
			cpu0 := threadCPU(b)
			for upto, target := int64(0), int64(b.N); upto < target; {
				timed(func(ctx context.Context, tx *wtx) error {
					var err error
					upto, err = indexCertificatesThrough(ctx, tx, target, batch)
					return err
				})
				for merged := mode == "steps"; merged; {
					timed(func(ctx context.Context, tx *wtx) error {
						var err error
						merged, err = mergeSearchStep(ctx, tx, searchMergePages)
						return err
					})
				}
			}
			b.ReportMetric(float64((threadCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-us/cert")
			b.ReportMetric(float64(longest.Microseconds())/1000, "max-tx-ms")
			b.ReportMetric(float64(over5), "tx>5ms")
		})
	}
}

// threadCPU is the CPU time of the calling thread so far.
func threadCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_THREAD, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
