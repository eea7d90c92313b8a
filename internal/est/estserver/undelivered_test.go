package estserver_test

import (
	"bytes"
	"context"
	"crypto"
	"encoding/asn1"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/est"
	"github.com/scepter/scepter/internal/est/estserver"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest"
	"github.com/scepter/scepter/internal/server"
	"github.com/scepter/scepter/internal/store"
)

// awaySigner is an RA key on a token that fails, as the PKCS#11 signer
// does, while away says the token is away.
type awaySigner struct {
	crypto.Signer
	away atomic.Pointer[func() bool]
}

func (s *awaySigner) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if (*s.away.Load())() {
		return nil, fmt.Errorf("%w: the token is not present", pki.ErrUnavailable)
	}
	return s.Signer.Sign(rand, digest, opts)
}

// raOnToken is the service with its RA key behind an awaySigner.
type raOnToken struct {
	*enroll.Service
	ra *pki.RA
}

func (s raOnToken) ActiveRA() *pki.RA { return s.ra }

// TestServerKeyGenRAKeyAway: an encrypted serverkeygen whose key package
// the RA cannot sign answers 503 with no valid certificate left behind:
// refused before issuance when the token is away already, and the
// certificate revoked (cessationOfOperation, audited) when it goes away
// between that check and the package. Once the token is back, the retry
// gets one certificate.
func TestServerKeyGenRAKeyAway(t *testing.T) {
	for name, tc := range map[string]struct {
		// away says, given how many keygen certificates the store holds,
		// whether the token is away.
		away        func(issued int) bool
		wantRevoked int // certificates issued, then revoked
	}{
		"away before issuance": {away: func(int) bool { return true }, wantRevoked: 0},
		"away once issued":     {away: func(issued int) bool { return issued > 0 }, wantRevoked: 1},
	} {
		t.Run(name, func(t *testing.T) {
			keygen := profile("keygen", func(p *pki.Profile) { p.ServerKeyGen = true })
			f := newFixture(t, fixtureOptions{profiles: []pki.Profile{keygen}})
			keygenCerts := func(status pki.CertStatus) []pki.Certificate {
				t.Helper()
				certs, _, err := f.st.ListCertificates(context.Background(), store.CertFilter{Profile: "keygen", Status: status, Limit: 1000})
				if err != nil {
					t.Error(err)
				}
				return certs
			}
			ra := *f.svc.ActiveRA()
			signer := &awaySigner{Signer: ra.Key}
			away := func() bool { return tc.away(len(keygenCerts(""))) }
			signer.away.Store(&away)
			ra.Key = signer
			mux, err := server.TLSMux(server.Handlers{EST: estserver.New(raOnToken{f.svc, &ra}, nil, estserver.Options{})})
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewTLSServer(mux)
			t.Cleanup(srv.Close)

			rsaKey, err := keys.Generate(keys.RSA2048)
			if err != nil {
				t.Fatal(err)
			}
			id, _ := asn1.Marshal(pkitest.SubjectKeyID(t, rsaKey.Public()))
			body := newCSR(t, rsaKey, "keygen-away", csr.Template{Attributes: []csr.Attribute{{Type: est.OIDAsymmetricDecryptKeyIdentifier, Values: [][]byte{id}}}})
			post := func() *http.Response {
				t.Helper()
				req, err := http.NewRequest(http.MethodPost, srv.URL+est.PathPrefix+"keygen/serverkeygen", bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Content-Type", est.ContentTypePKCS10)
				req.SetBasicAuth("alice", userPassword)
				resp, err := srv.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				return resp
			}
			if resp := post(); resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
				t.Fatalf("RA key away: HTTP %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
			}
			if valid := keygenCerts(pki.StatusValid); len(valid) != 0 {
				t.Errorf("RA key away: %d valid certificates left whose key was lost (first %s)", len(valid), valid[0].SerialHex)
			}
			revoked := keygenCerts(pki.StatusRevoked)
			if len(revoked) != tc.wantRevoked {
				t.Fatalf("RA key away: %d revoked certificates, want %d", len(revoked), tc.wantRevoked)
			}
			for _, c := range revoked {
				if c.RevokeReason != pki.ReasonCessationOfOperation {
					t.Errorf("%s revoked for reason %d, want cessationOfOperation", c.SerialHex, c.RevokeReason)
				}
				evs, err := f.st.ListAudit(context.Background(), store.AuditFilter{Type: pki.EventRevoked, SerialHex: c.SerialHex})
				if err != nil {
					t.Fatal(err)
				}
				if len(evs) != 1 || evs[0].Actor != enroll.UndeliveredActor || evs[0].Reason != "cessationOfOperation" {
					t.Errorf("audit of the revocation of %s: %+v; want one by %s for cessationOfOperation", c.SerialHex, evs, enroll.UndeliveredActor)
				}
			}

			back := func() bool { return false }
			signer.away.Store(&back)
			if resp := post(); resp.StatusCode != http.StatusOK {
				t.Fatalf("token back: HTTP %d, want 200", resp.StatusCode)
			}
			if valid := keygenCerts(pki.StatusValid); len(valid) != 1 {
				t.Errorf("token back: %d valid certificates, want 1", len(valid))
			}
		})
	}
}
