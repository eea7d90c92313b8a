package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// BenchmarkRecordIssuance measures durable issuance bookkeeping on the store
// open returns (a fresh one per sub-benchmark, closed by open's cleanup):
// RecordIssuance alone (certificate and one event in one transaction), with
// the ReserveSerial that precedes it in the issuance pipeline, and that pair
// from 8 concurrent callers. Every driver runs the same records, so their
// figures compare line by line. The records are the size of real ones, and
// their serials as scattered (a CA's serials are random), since both decide
// how many pages of a B-tree each write touches.
func BenchmarkRecordIssuance(b *testing.B, open func(b *testing.B) store.Store) {
	der := make([]byte, 800)
	tbs := make([]byte, 700)
	issue := func(s store.Store, i int64, reserve bool) error {
		ctx := context.Background()
		sum := sha256.Sum256(strconv.AppendInt(nil, i, 10))
		serial := hex.EncodeToString(sum[:16])
		c := pki.Certificate{
			SerialHex: serial, IssuerID: "issuer", Subject: "CN=" + serial, NotBefore: t0,
			NotAfter: t0.Add(365 * 24 * time.Hour), Status: pki.StatusValid, Profile: "default",
			Protocol: pki.ProtocolSCEP, Source: pki.SourceIssued, CreatedAt: t0, DER: der,
		}
		if reserve {
			if err := s.ReserveSerial(ctx, c.IssuerID, c.SerialHex, tbs, t0); err != nil {
				return err
			}
		}
		return s.RecordIssuance(ctx, store.Issuance{Certificate: c, Now: t0,
			Events: []pki.AuditEvent{{Type: pki.EventIssued, SerialHex: c.SerialHex, Outcome: "success"}}})
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
