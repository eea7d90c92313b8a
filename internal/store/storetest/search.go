package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/store"
)

// testSearchMatchesValues: a search term matches a substring of the
// subject (as it reads), of one SAN or of the serial, and nothing else:
// not the JSON the SANs are stored in (its brackets, quotes and commas),
// and not text that runs from the subject into a SAN. Terms of one or two
// characters and longer ones take different paths in the stores, and so
// do the two orders; every case runs in both.
func testSearchMatchesValues(t *testing.T, s store.Store) {
	ctx := context.Background()
	const local, doe, printer, nul = "a1", "b2", "6d566576d8ceb76106b9cf8761cf18f", "c3"
	for i, c := range []struct {
		serial, subject string
		sans            []string
	}{
		{local, "CN=localhost,O=scepter", []string{"dns:localhost", "ip:127.0.0.1"}},
		{doe, `CN=Doe\, John,O=Acme\, Inc`, nil}, // stored as "[]"
		{printer, "CN=printer", []string{"dns:printer.example"}},
		// Its SANs are stored with the JSON escape \u0000, which
		// PostgreSQL's text cannot hold: the search must not fail on it.
		{nul, "CN=odd", []string{"uri:urn:a\x00b", "dns:odd.example"}},
	} {
		cert := newCert(issuerA, c.serial, t0.Add(time.Duration(48+i)*time.Hour))
		cert.Subject, cert.SANs = c.subject, c.sans
		mustRecord(t, s, issuance(cert))
	}
	for _, c := range []struct {
		name, term string
		want       []string
	}{
		// The stored SAN list is ["dns:localhost","ip:127.0.0.1"]; none
		// of these is in a subject, a SAN or a serial.
		{"a bracket", "[", nil},
		{"an empty list", "[]", nil},
		{"a quote", `"`, nil},
		{"between two SANs", `","`, nil},
		{"a SAN and its closing quote", `localhost"`, nil},
		{"a SAN and the next", `localhost","ip:`, nil},
		// Subject, SANs and serial are searched one by one.
		{"from the subject into a SAN", `o=scepter ["dns:local`, nil},
		{"from the SANs into the serial", `127.0.0.1"] ` + local, nil},
		{"from the subject into the serial", "acme, inc [] " + doe, nil},
		// What is there is found.
		{"a SAN", "ip:127.0", []string{local}},
		{"a SAN, short", "p:", []string{local}},
		{"a SAN, any case", "DNS:PRINTER.Example", []string{printer}},
		{"a name in subject and SAN", "localhost", []string{local}},
		{"a subject with an escaped comma", `Doe\, John`, []string{doe}},
		{"a subject as it reads", "doe, john,o=acme, inc", []string{doe}},
		{"a subject, short", "e,", []string{doe}},
		{"a serial", "d8ceb761", []string{printer}},
		{"a SAN after one with a NUL", "odd.example", []string{nul}},
		{"a SAN with a NUL", "urn:a", []string{nul}},
		{"a serial as openssl prints it", "06:D5:66:57:6D:8C:EB:76:10:6B:9C:F8:76:1C:F1:8F", []string{printer}},
	} {
		for _, order := range []struct {
			name string
			f    store.CertFilter
		}{
			{"newest first", store.CertFilter{Search: c.term}},
			{"by expiry", store.CertFilter{Search: c.term, NotAfterBefore: t0.Add(72 * time.Hour)}},
		} {
			certs, _, err := s.ListCertificates(ctx, order.f)
			if err != nil {
				t.Fatalf("%s, %s (%q): %v", c.name, order.name, c.term, err)
			}
			var got []string
			for _, cert := range certs {
				got = append(got, cert.SerialHex)
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("%s, %s (%q): %v, want %v", c.name, order.name, c.term, got, c.want)
			}
		}
	}
}
