package ca

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"path/filepath"
	"slices"
	"testing"

	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pkitest"
)

// An OCSP responder whose certificate is revoked is left out of an export
// (or of an older export about to be imported): its certificate and its
// key, not the responder's other key name nor the CA's files.
func TestDropRevokedResponders(t *testing.T) {
	clock := pkitest.NewClock(t0)
	dir, a := newCA(t, InitOptions{}, clock)
	src := keys.Files(filepath.Join(dir, "ocsp"))
	revokedKey, err := src.Create("resp", keys.P256)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Create("resp-b", keys.P256); err != nil {
		t.Fatal(err)
	}
	cert, err := a.Issuer.Issue(context.Background(), Request{RawSubject: rawName(t, pkix.Name{CommonName: "responder"}),
		PublicKey: revokedKey.Public(), Profile: leafProfile(day)}, clock.Now(), okReserve)
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.WriteCertFile(filepath.Join(dir, "ocsp", "resp.crt"), cert); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name    string
		revoked bool
		left    []string
	}{
		{"revoked", true, []string{"ocsp/resp.crt", "ocsp/resp.key"}},
		{"good", false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := export(t, dir, ExportKeysOptions{ExtraDirs: []string{"ocsp"}})
			before := paths(x)
			var asked []*x509.Certificate
			left := x.DropRevokedResponders("ocsp", func(c *x509.Certificate) bool {
				asked = append(asked, c)
				return tc.revoked
			})
			if !slices.Equal(left, tc.left) {
				t.Errorf("left out %q, want %q", left, tc.left)
			}
			if len(asked) != 1 || !asked[0].Equal(cert) {
				t.Errorf("asked about %d certificates, want the responder's only", len(asked))
			}
			want := slices.DeleteFunc(before, func(p string) bool { return slices.Contains(tc.left, p) })
			if got := paths(x); !slices.Equal(got, want) {
				t.Errorf("export holds %q, want %q", got, want)
			}
		})
	}
}
