package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// testBadTextLookups: a key that no stored row can hold (a NUL, invalid
// UTF-8) finds nothing, as any other unknown key does. PostgreSQL refuses
// such text outright; the lookup must not turn that into a store error,
// which the edges answer with 500 (a login name, an EST user, a filter or
// a path segment is chosen by the client).
func testBadTextLookups(t *testing.T, s store.Store) {
	ctx := context.Background()
	ev := pki.AuditEvent{Time: t0, Type: "test", Actor: "test", Outcome: "success"}
	notFound := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", what, err)
		}
	}
	noError := func(what string, n int, err error) {
		t.Helper()
		if err != nil || n != 0 {
			t.Errorf("%s: %d rows, %v; want none and no error", what, n, err)
		}
	}
	for _, bad := range []string{"a\x00b", "bad\xffname", "\xc3"} {
		_, err := s.User(ctx, bad)
		notFound("User", err)
		notFound("DeleteUser", s.DeleteUser(ctx, bad, ev))
		_, err = s.ESTUser(ctx, bad)
		notFound("ESTUser", err)
		notFound("DeleteESTUser", s.DeleteESTUser(ctx, bad, t0, ev))
		_, err = s.RevokeToken(ctx, bad, t0, ev)
		notFound("RevokeToken", err)
		notFound("DeleteChallenge", s.DeleteChallenge(ctx, bad, ev))
		_, err = s.Request(ctx, bad)
		notFound("Request", err)
		_, err = s.RequestByTransaction(ctx, bad, bad, store.RequestKeys{})
		notFound("RequestByTransaction", err)
		reqs, err := s.RequestsByKey(ctx, bad, []byte(bad))
		noError("RequestsByKey", len(reqs), err)
		notFound("RejectRequest", s.RejectRequest(ctx, bad, "no", "op", t0, ev))
		_, err = s.Certificate(ctx, bad, bad)
		notFound("Certificate", err)
		_, _, err = s.RevokeCertificate(ctx, bad, bad, 1, t0, ev)
		notFound("RevokeCertificate", err)
		_, _, err = s.UnholdCertificate(ctx, bad, bad, t0, ev)
		notFound("UnholdCertificate", err)
		certs, err := s.CertificatesBySerial(ctx, bad)
		noError("CertificatesBySerial", len(certs), err)
		certs, _, err = s.ListCertificates(ctx, store.CertFilter{Profile: bad})
		noError("ListCertificates by profile", len(certs), err)
		certs, _, err = s.ListCertificates(ctx, store.CertFilter{Protocol: pki.Protocol(bad)})
		noError("ListCertificates by protocol", len(certs), err)
		certs, _, err = s.ListCertificates(ctx, store.CertFilter{IssuerID: bad})
		noError("ListCertificates by issuer", len(certs), err)
		certs, _, err = s.ListCertificates(ctx, store.CertFilter{Search: bad})
		noError("ListCertificates by search", len(certs), err)
		reqs, _, err = s.ListRequests(ctx, store.RequestFilter{Profile: bad})
		noError("ListRequests by profile", len(reqs), err)
		evs, err := s.ListAudit(ctx, store.AuditFilter{Type: bad, SerialHex: bad})
		noError("ListAudit", len(evs), err)
		renewals, err := s.RenewalsOf(ctx, bad, bad)
		noError("RenewalsOf", len(renewals), err)
		_, err = s.ClaimLoginAttempt(ctx, bad, t0, t0.Add(time.Hour), func(int) time.Duration { return time.Minute })
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			t.Errorf("ClaimLoginAttempt: %v, want no store error", err)
		}
	}
}
