package scepserver

import (
	"context"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/cms"
	"github.com/scepter/scepter/internal/pki"
)

// noRAs is a service with no RA loaded and nothing else to ask: the
// recipient is none of its CA certificates.
type noRAs struct{ Service }

func (noRAs) RAs() []*pki.RA { return nil }

// The issuer of a foreign recipient is the requester's text: its control
// and bidi characters are escaped in the reply's failInfoText as every
// refusal quoting request data escapes them (r67 D1), and a long one is
// cut.
func TestNotOurRAQuotesTheRequestersIssuer(t *testing.T) {
	name := func(cn string) []byte {
		raw, err := asn1.Marshal(pkix.Name{CommonName: cn}.ToRDNSequence())
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	tests := []struct {
		name, cn, want string
	}{
		{"plain", "Other CA", `(issuer "CN=Other CA", serial 2a)`},
		{"bell and right-to-left override", "bel\ax\u202ey", `(issuer "CN=bel\ax\u202ey", serial 2a)`},
		{"long", strings.Repeat("a", 300), `(issuer "CN=` + strings.Repeat("a", 197) + `"…, serial 2a)`},
	}
	h := &Handler{svc: noRAs{}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &cms.Recipient{IssuerAndSerial: &cms.IssuerAndSerial{RawIssuer: name(tc.cn), Serial: big.NewInt(42)}}
			reason, err := h.notOurRA(context.Background(), r, time.Unix(0, 0))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(reason, tc.want) {
				t.Errorf("reason %q\ndoes not contain %q", reason, tc.want)
			}
			for _, c := range reason {
				if c < 0x20 || c == 0x7f || c >= 0x80 && c != '…' {
					t.Errorf("reason %q holds %U", reason, c)
				}
			}
		})
	}
}
