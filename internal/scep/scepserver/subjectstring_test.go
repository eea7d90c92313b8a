package scepserver_test

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"net/http"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/scep"
	"github.com/scepter/scepter/internal/store"
)

// csrWithCN is a request, correctly signed, whose subject is one CN of
// the given ASN.1 string tag and bytes, whatever they hold.
func csrWithCN(t *testing.T, tag int, value []byte) []byte {
	t.Helper()
	atv, err := asn1.Marshal([]any{asn1.ObjectIdentifier{2, 5, 4, 3}, asn1.RawValue{Tag: tag, Bytes: value}})
	if err != nil {
		t.Fatal(err)
	}
	set, err := asn1.Marshal(asn1.RawValue{Tag: asn1.TagSet, IsCompound: true, Bytes: atv})
	if err != nil {
		t.Fatal(err)
	}
	name, err := asn1.Marshal(asn1.RawValue{Tag: asn1.TagSequence, IsCompound: true, Bytes: set})
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{RawSubject: name}, testKey(t, 0))
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// r109 D2: a request that is DER but whose subject holds a value its
// string type does not allow is refused as a bad request (it was
// badMessageCheck), and the answer's failInfo text and the audit trail's
// reason name the attribute and what is wrong, not a message envelope
// that could not be decrypted.
func TestSubjectStringTheTypeForbidsIsNamed(t *testing.T) {
	ts := newTestServer(t, serverOptions{})
	for _, tc := range []struct {
		name  string
		tag   int
		value []byte
		want  string
	}{
		{"UTF8String that is not UTF-8", asn1.TagUTF8String, []byte{'a', 0xff, 0xfe, 'b'}, "its subject's CN is a UTF8String that is not valid UTF-8 (byte 0xFF at offset 1)"},
		{"PrintableString with Latin-1", asn1.TagPrintableString, []byte{'a', 0xe9, 'b'}, "its subject's CN is a PrintableString holding byte 0xE9 at offset 1, outside PrintableString's set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			der, msg := ts.build(t, reqParams{csrDER: csrWithCN(t, tc.tag, tc.value)})
			resp, body := ts.post(t, der)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("HTTP %d: %s", resp.StatusCode, body)
			}
			rep := ts.parseReply(t, body, msg)
			if rep.PKIStatus != scep.StatusFailure || rep.FailInfo != scep.BadRequest {
				t.Errorf("pkiStatus %s failInfo %s (%s), want FAILURE badRequest", rep.PKIStatus, rep.FailInfo, rep.FailInfoText)
			}
			if !strings.Contains(rep.FailInfoText, tc.want) {
				t.Errorf("failInfo text %q, want it naming %q", rep.FailInfoText, tc.want)
			}
			evs, err := ts.Store.ListAudit(context.Background(), store.AuditFilter{Type: pki.EventRefused, Limit: 1})
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != 1 || !strings.Contains(evs[0].Reason, tc.want) {
				t.Errorf("refusal events %+v, want the newest naming %q", evs, tc.want)
			}
		})
	}
}
