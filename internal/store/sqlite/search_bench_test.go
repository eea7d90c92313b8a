package sqlite

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/store"
)

// BenchmarkSearchIndex indexes certificates recorded meanwhile in
// transactions of each size: ns/op is per certificate, and max-tx-ms the
// longest transaction, which the enrollments queued behind it wait for.
func BenchmarkSearchIndex(b *testing.B) {
	for _, batch := range []int{128, 1000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			s := openTemp(b)
			s.stopSearchIndexer()
			ctx := context.Background()
			for i := range b.N {
				c := testCert(fmt.Sprintf("%040x", i))
				c.Subject = fmt.Sprintf("CN=device-%07d.fleet.corp.example,OU=Devices,O=Example Corp,C=US", i)
				c.SANs = []string{fmt.Sprintf("dns:device-%07d.fleet.corp.example", i)}
				if err := s.RecordIssuance(ctx, store.Issuance{Certificate: c, Now: t0}); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			var longest time.Duration
			for upto, target := int64(0), int64(b.N); upto < target; {
				start := time.Now()
				err := s.withOrderedTx(ctx, func(ctx context.Context, tx *wtx) error {
					var err error
					upto, err = indexCertificatesThrough(ctx, tx, target, batch)
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
				longest = max(longest, time.Since(start))
			}
			b.ReportMetric(float64(longest.Microseconds())/1000, "max-tx-ms")
		})
	}
}
