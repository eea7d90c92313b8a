package postgres

import (
	"context"
	"testing"

	"github.com/scepter/scepter/internal/store"
)

// BenchmarkSearch times one page of 100 of a search on fillAnalyzed's
// 20,000 certificates, each with a subject and two SANs, for the terms of
// the SQLite store's BenchmarkSearch.
func BenchmarkSearch(b *testing.B) {
	s, _ := openFresh(b)
	fillAnalyzed(b, s, generatedCerts{subject: `'CN=device-' || i || ',OU=Devices,O=Example Corp'`,
		sans: `'["dns:device-' || i || '.fleet.corp.example","ip:10.0.' || (i % 256) || '.1"]'`})
	ctx := context.Background()
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
