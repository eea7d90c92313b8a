package postgres

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/postgres/pgtest"
)

// BenchmarkRecordIssuance is the SQLite benchmark of the same name
// (../sqlite/plan_test.go) on PostgreSQL, with the same records, so the
// drivers compare line by line: RecordIssuance alone (certificate and one
// event in one transaction), with the ReserveSerial that precedes it in the
// issuance pipeline, and that pair from 8 concurrent callers. The store has
// the production pool (pool_max_conns defaults to max(4, CPUs)), on a fresh
// database of $SCEPTER_TEST_POSTGRES_URL's server (skipped without it);
// every commit waits for the server's WAL flush as it is configured there.
func BenchmarkRecordIssuance(b *testing.B) {
	der := make([]byte, 800)
	issue := func(s *Store, i int64, reserve bool) error {
		ctx := context.Background()
		c := testCert(strconv.FormatInt(i, 16))
		c.DER = der
		if reserve {
			if err := s.ReserveSerial(ctx, c.IssuerID, c.SerialHex, nil, t0); err != nil {
				return err
			}
		}
		return s.RecordIssuance(ctx, store.Issuance{Certificate: c, Now: t0,
			Events: []pki.AuditEvent{{Type: pki.EventIssued, SerialHex: c.SerialHex, Outcome: "success"}}})
	}
	open := func(b *testing.B) *Store {
		b.Helper()
		s, err := Open(context.Background(), pgtest.Database(b))
		if err != nil {
			b.Fatalf("Open: %v", err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	}
	for _, reserve := range []bool{false, true} {
		name := "alone"
		if reserve {
			name = "with-reserve"
		}
		b.Run(name, func(b *testing.B) {
			s := open(b)
			b.ReportAllocs()
			var i int64
			for b.Loop() {
				i++
				if err := issue(s, i, reserve); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("with-reserve-parallel-8", func(b *testing.B) {
		s := open(b)
		var n atomic.Int64
		b.SetParallelism(8)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := issue(s, n.Add(1), true); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
