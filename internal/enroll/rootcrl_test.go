package enroll_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// noIssuingCRLs is a CRL source that has published nothing yet.
type noIssuingCRLs struct{}

func (noIssuingCRLs) CurrentCRL(context.Context, string) ([]byte, error) {
	return nil, store.ErrNotFound
}

// SCEP GetCRL naming the root (asked for an issuing CA certificate) is
// answered with the newest root CRL stored (r49: badCertId "no issuing CA
// of this server has that name", while /crl/ROOT-ID.crl served it), and
// says so when none was signed.
func TestCurrentCRLOfTheRoot(t *testing.T) {
	f := newFixtureWith(t, enroll.Config{CRLs: noIssuingCRLs{}})
	ctx := context.Background()
	issuer, _ := f.auth.Active(f.clock.Now())
	root := issuer.Chain[1]
	if _, _, err := f.svc.CurrentCRL(ctx, root.RawSubject, issuer.Cert.SerialNumber.Text(16)); pki.ErrorCode(err) != pki.EBadCertID ||
		!bytes.Contains([]byte(pki.ErrorMessage(err)), []byte("ca root crl")) || !bytes.Contains([]byte(pki.ErrorMessage(err)), []byte("never signs one, even with the root key in its data directory")) {
		t.Fatalf("no root CRL signed yet: %v, want badCertId saying how to sign one", err)
	}
	sum := sha256.Sum256(root.Raw)
	now := f.clock.Now()
	der := []byte("a root CRL, as stored")
	if err := f.st.PutCRL(ctx, store.CRL{IssuerID: hex.EncodeToString(sum[:]), Number: 1, ThisUpdate: now, NextUpdate: now.Add(time.Hour),
		DER: der, CreatedAt: now}, 5); err != nil {
		t.Fatal(err)
	}
	got, signer, err := f.svc.CurrentCRL(ctx, root.RawSubject, issuer.Cert.SerialNumber.Text(16))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, der) || !signer.Equal(root) {
		t.Errorf("GetCRL of the root: %q signed by %s, want the stored root CRL and the root", got, signer.Subject)
	}
	if _, _, err := f.svc.CurrentCRL(ctx, []byte{0x30, 0}, "1"); pki.ErrorCode(err) != pki.EBadCertID {
		t.Errorf("a name no CA has: %v, want badCertId", err)
	}
}

// behindRootCRLs serves no root CRL, as crl.Publisher does while the
// store's is below the number signed with the node's data directory.
type behindRootCRLs struct{ noIssuingCRLs }

func (behindRootCRLs) RootCRL(context.Context, string) ([]byte, error) {
	return nil, pki.Errorf(pki.EUnavailable, "the root CRL is behind")
}

// GetCRL of the root asks the CRL source when it can tell (r54: a store
// restored from an older copy had GetCRL serve the older root CRL, which
// the CRL URL refused).
func TestCurrentCRLOfTheRootAsksTheSource(t *testing.T) {
	f := newFixtureWith(t, enroll.Config{CRLs: behindRootCRLs{}})
	ctx := context.Background()
	issuer, _ := f.auth.Active(f.clock.Now())
	root := issuer.Chain[1]
	sum := sha256.Sum256(root.Raw)
	now := f.clock.Now()
	if err := f.st.PutCRL(ctx, store.CRL{IssuerID: hex.EncodeToString(sum[:]), Number: 1, ThisUpdate: now, NextUpdate: now.Add(time.Hour),
		DER: []byte("an older root CRL"), CreatedAt: now}, 5); err != nil {
		t.Fatal(err)
	}
	if der, _, err := f.svc.CurrentCRL(ctx, root.RawSubject, "1"); pki.ErrorCode(err) != pki.EUnavailable {
		t.Errorf("GetCRL of a root CRL behind: %q, %v; want unavailable", der, err)
	}
}
