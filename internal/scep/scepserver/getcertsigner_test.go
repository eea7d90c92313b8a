package scepserver_test

import (
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/scep"
	"github.com/scepter/scepter/internal/store"
)

// certificateDown is a store whose certificate lookups fail as an
// unreachable database does while down is set.
type certificateDown struct {
	store.Store
	down atomic.Bool
}

func (s *certificateDown) Certificate(ctx context.Context, issuerID, serialHex string) (*pki.Certificate, error) {
	if s.down.Load() {
		return nil, fmt.Errorf("%w: dial tcp 127.0.0.1:5432: connection refused", store.ErrUnavailable)
	}
	return s.Store.Certificate(ctx, issuerID, serialHex)
}

// GetCert signed by a revoked certificate of ours is answered badCertId;
// while the store cannot say whether the signer is revoked, 503 (ask
// again), not a FAILURE a device takes as final, and the same message sent
// again once the store is back gets the certificate. GetCRL asks no such
// question: the CRL is public, and a revoked or unknown signer gets it.
func TestGetCertSignerRevokedOrStoreDown(t *testing.T) {
	var down *certificateDown
	var logged syncBuffer
	ts := newTestServer(t, serverOptions{store: func(st store.Store) store.Store {
		down = &certificateDown{Store: st}
		return down
	}, log: slog.New(slog.NewTextHandler(&logged, nil))})
	ctx := context.Background()
	key := testKey(t, 0)
	mine := ts.enrollCert(t, key, "CN=getcert-signer-1,O=Acme")
	other := ts.enrollCert(t, testKey(t, 1), "CN=getcert-signer-2,O=Acme")
	revokedKey := testKey(t, 2)
	revoked := ts.enrollCert(t, revokedKey, "CN=getcert-signer-3,O=Acme")
	if _, _, err := ts.Store.RevokeCertificate(ctx, ts.Authority.Issuer.ID, revoked.SerialNumber.Text(16), 1, ts.Clock.Now(),
		pki.AuditEvent{Type: pki.EventRevoked}); err != nil {
		t.Fatal(err)
	}
	if err := ts.CRL.Update(ctx); err != nil {
		t.Fatal(err)
	}
	build := func(op scep.MessageType, signer *x509.Certificate, signerKey crypto.Signer) ([]byte, *scep.PKIMessage) {
		t.Helper()
		content, err := scep.MarshalIssuerAndSerial(other.RawIssuer, other.SerialNumber)
		if err != nil {
			t.Fatal(err)
		}
		return ts.build(t, reqParams{key: signerKey, signerCert: signer, signerKey: signerKey, msgType: op, content: content})
	}

	for _, c := range []struct {
		op   scep.MessageType
		want scep.PKIStatus
	}{{scep.GetCert, scep.StatusFailure}, {scep.GetCRL, scep.StatusSuccess}} {
		der, msg := build(c.op, revoked, revokedKey)
		resp, body := ts.postTo(t, "/scep", der)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s signed by a revoked certificate: HTTP %d %s", c.op, resp.StatusCode, body)
		}
		rep := ts.parseReply(t, body, msg)
		if rep.PKIStatus != c.want || c.want == scep.StatusFailure && rep.FailInfo != scep.BadCertID {
			t.Errorf("%s signed by a revoked certificate: %s %s (%s), want %s", c.op, rep.PKIStatus, rep.FailInfo, rep.FailInfoText, c.want)
		}
	}
	der, msg := build(scep.GetCRL, mine, key)
	down.down.Store(true)
	resp, body := ts.postTo(t, "/scep", der)
	down.down.Store(false)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GetCRL while the store cannot read certificates: HTTP %d %s, want SUCCESS", resp.StatusCode, body)
	} else if rep := ts.parseReply(t, body, msg); rep.PKIStatus != scep.StatusSuccess {
		t.Errorf("GetCRL while the store cannot read certificates: %s %s (%s), want SUCCESS", rep.PKIStatus, rep.FailInfo, rep.FailInfoText)
	}

	for _, op := range []scep.MessageType{scep.GetCert} {
		der, msg := build(op, mine, key)
		down.down.Store(true)
		resp, body := ts.postTo(t, "/scep", der)
		down.down.Store(false)
		if resp.StatusCode == http.StatusOK {
			rep := ts.parseReply(t, body, msg)
			t.Errorf("%s while the store is down: %s %s (%s), want HTTP 503", op, rep.PKIStatus, rep.FailInfo, rep.FailInfoText)
			continue
		}
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s while the store is down: HTTP %d (Retry-After %q) %s, want 503 with Retry-After", op, resp.StatusCode, resp.Header.Get("Retry-After"), body)
			continue
		}
		// A state that lasts, which /readyz reports: a WARN per request,
		// not an ERROR (r51).
		if logs := logged.String(); strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, `msg="scep: unavailable"`) {
			t.Errorf("%s while the store is down: want a WARN and no ERROR in the log:\n%s", op, logs)
		}
		resp, body = ts.postTo(t, "/scep", der)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s sent again once the store is back: HTTP %d %s", op, resp.StatusCode, body)
		}
		if rep := ts.parseReply(t, body, msg); rep.PKIStatus != scep.StatusSuccess {
			t.Errorf("%s sent again once the store is back: %s %s (%s), want SUCCESS", op, rep.PKIStatus, rep.FailInfo, rep.FailInfoText)
		}
	}
}
