package sqlite

import (
	"context"
	"testing"

	"github.com/scepter/scepter/internal/pkitest"
	"github.com/scepter/scepter/internal/store"
)

// BenchmarkSearch times one page of 100 of a search on an inventory of
// SCEPTER_BENCH_ROWS certificates (default 20,000, as the PostgreSQL
// store's BenchmarkSearch), each with a subject and two SANs. The terms,
// the same in both stores' benchmarks: rare and frequent ones, a serial as
// openssl prints it, each store's path for terms under three characters,
// and terms the search index holds for every certificate only in the JSON
// punctuation of its SAN list.
func BenchmarkSearch(b *testing.B) {
	rows := pkitest.BenchRows(b, 20000)
	s := openTemp(b)
	ctx := context.Background()
	if _, err := s.w.ExecContext(ctx, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
		INSERT INTO certificates (issuer_id, serial_hex, issuer_dn, subject_dn, sans, not_before, not_after, status,
			profile, protocol, source, transaction_id, key_type, created_at, der)
		SELECT 'issuer', printf('%x', i), 'CN=CA', 'CN=device-' || i || ',OU=Devices,O=Example Corp',
			'["dns:device-' || i || '.fleet.corp.example","ip:10.0.' || (i % 256) || '.1"]', 0, i, 'valid',
			'default', 'scep', 'issued', 'tx-' || i, 'p256', i, x'30' FROM n`, rows); err != nil {
		b.Fatal(err)
	}
	if err := s.catchUpSearch(ctx); err != nil {
		b.Fatal(err)
	}
	for _, term := range []string{"device-1234.", "device", "fleet.corp", "ip:10.0.7.", "04:d2", "zz", "[", `.example"`} {
		b.Run(term, func(b *testing.B) {
			for b.Loop() {
				if _, _, err := s.ListCertificates(ctx, store.CertFilter{Search: term, Limit: 100}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
