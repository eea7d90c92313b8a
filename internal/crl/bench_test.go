package crl

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pkitest"
	"github.com/scepter/scepter/internal/pkitest/fixture"
)

// BenchmarkBuild100k: one CRL generation for an issuer with 100,000
// revoked, unexpired certificates (SCEPTER_BENCH_ROWS changes the count):
// the store query, the entries and the signature (EC and RSA CAs).
func BenchmarkBuild100k(b *testing.B) {
	n := pkitest.BenchRows(b, 100_000)
	for _, keyType := range []string{"p256", "rsa2048"} {
		b.Run(keyType, func(b *testing.B) {
			f := fixture.New(b, fixture.Options{KeyType: keyType})
			issuer := f.Issuer()
			insertRevoked(b, filepath.Join(f.Dir, "scepter.db"), issuer.ID, n, f.Clock.Now())
			p := New(f.Store, f.Authority, f.Clock, f.Log, Config{})
			ctx := context.Background()
			var size int
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c, err := p.build(ctx, issuer, nil, int64(i+1), 0, f.Clock.Now())
				if err != nil {
					b.Fatal(err)
				}
				if c.Entries != n {
					b.Fatalf("%d entries, want %d", c.Entries, n)
				}
				size = len(c.DER)
			}
			b.ReportMetric(float64(size)/(1<<20), "MiB/CRL")
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}

// insertRevoked writes n revoked certificate rows straight into the
// database in one transaction (issuing 100,000 certificates through the
// CA would take minutes and measure something else).
func insertRevoked(b *testing.B, path, issuerID string, n int, now time.Time) {
	b.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	tx, err := db.Begin()
	if err != nil {
		b.Fatal(err)
	}
	stmt, err := tx.Prepare(`INSERT INTO certificates (issuer_id, serial_hex, not_before, not_after, status, revoked_at,
		revoke_reason, created_at, der) VALUES (?, ?, ?, ?, 'revoked', ?, ?, ?, x'00')`)
	if err != nil {
		b.Fatal(err)
	}
	serial := make([]byte, 16)
	for i := 0; i < n; i++ {
		rand.Read(serial)
		serial[0] |= 0x40
		at := now.Add(-time.Duration(i) * time.Second).UnixMicro()
		if _, err := stmt.Exec(issuerID, hex.EncodeToString(serial), at, now.Add(365*24*time.Hour).UnixMicro(), at, i%6, at); err != nil {
			b.Fatal(fmt.Errorf("row %d: %w", i, err))
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
}
