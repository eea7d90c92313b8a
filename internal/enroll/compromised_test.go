package enroll_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// A key revoked as compromised gets no new certificate: not by the same
// request sent again, not by a renewal of another certificate of that key,
// not held for an approval; a new key enrolls as before.
func TestCompromisedKeyIsRefused(t *testing.T) {
	held := pki.DefaultProfile()
	held.Name, held.RequireApproval = "approval", true
	p := pki.DefaultProfile()
	p.Name, p.RenewalWindow = "default", 1
	f := newFixture(t, map[string]pki.Profile{"default": p, "approval": held}, "default")
	ctx := context.Background()
	k := newKey(t)
	first, err := f.svc.Enroll(ctx, namedWithKey(t, k, static, "kcdev", "kcdev.example"))
	if err != nil {
		t.Fatal(err)
	}
	// A second certificate of the key (another transaction: the same one
	// would be answered with the first).
	secondReq := namedWithKey(t, k, static, "kcdev", "kcdev.example")
	secondReq.TransactionID = "tx-kcdev-2"
	second, err := f.svc.Enroll(ctx, secondReq)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.admin.Revoke(ctx, first.Record.SerialHex, "", store.ReasonKeyCompromise, "cli:test"); err != nil {
		t.Fatal(err)
	}
	date := f.clock.Now().UTC().Format("2006-01-02")

	renewal := namedWithKey(t, k, "", "kcdev", "kcdev.example")
	renewal.Renewal, renewal.Evidence.SignerCert = true, second.Certificate
	otp, _, err := f.admin.NewChallenge(ctx, time.Hour, "approval", "test")
	if err != nil {
		t.Fatal(err)
	}
	heldReq := namedWithKey(t, k, otp, "kcdev", "kcdev.example")
	heldReq.Profile, heldReq.TransactionID = "approval", "tx-held"
	for name, req := range map[string]enroll.Request{
		"the same request again":                 namedWithKey(t, k, static, "kcdev", "kcdev.example"),
		"a renewal of another certificate of it": renewal,
		"a request to be held for approval":      heldReq,
	} {
		before, _, err := f.st.ListCertificates(ctx, store.CertFilter{})
		if err != nil {
			t.Fatal(err)
		}
		res, err := f.svc.Enroll(ctx, req)
		if req.Renewal {
			// The key's other certificate was revoked with the first
			// (keyCompromise takes the key's certificates along): it
			// renews nothing.
			if pki.ErrorCode(err) != pki.EBadCertID || !strings.Contains(pki.ErrorMessage(err), "revoked") {
				t.Errorf("%s: issued or held %v, %v; want refused, the certificate revoked", name, res != nil, err)
			}
		} else if pki.ErrorCode(err) != pki.EBadRequest {
			t.Errorf("%s: issued or held %v, %v; want refused, bad request", name, res != nil, err)
			continue
		} else if msg := pki.ErrorMessage(err); !strings.Contains(msg, "revoked as compromised on "+date) ||
			!strings.Contains(msg, first.Record.SerialHex) || !strings.Contains(msg, "new key") {
			t.Errorf("%s: refused with %q, want the date, the certificate and what to do", name, msg)
		}
		after, _, err := f.st.ListCertificates(ctx, store.CertFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(after) != len(before) {
			t.Errorf("%s: %d certificates recorded", name, len(after)-len(before))
		}
	}
	if reqs, _, err := f.st.ListRequests(ctx, store.RequestFilter{}); err != nil || len(reqs) != 0 {
		t.Errorf("requests held: %d, %v; want none", len(reqs), err)
	}
	if _, err := f.svc.Enroll(ctx, namedWithKey(t, newKey(t), static, "kcdev", "kcdev.example")); err != nil {
		t.Errorf("a new key: %v", err)
	}

	// A request held before its key was revoked as compromised is not
	// issued on approval.
	k2 := newKey(t)
	otp2, _, err := f.admin.NewChallenge(ctx, time.Hour, "approval", "test")
	if err != nil {
		t.Fatal(err)
	}
	waiting := namedWithKey(t, k2, otp2, "kcdev2")
	waiting.Profile, waiting.TransactionID = "approval", "tx-waiting"
	pending, err := f.svc.Enroll(ctx, waiting)
	if err != nil || pending.Pending == nil {
		t.Fatalf("held: %v", err)
	}
	other, err := f.svc.Enroll(ctx, namedWithKey(t, k2, static, "kcdev2"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.admin.Revoke(ctx, other.Record.SerialHex, "", store.ReasonKeyCompromise, "cli:test"); err != nil {
		t.Fatal(err)
	}
	if res, err := f.svc.Approve(ctx, pending.Pending.ID, "cli:test"); pki.ErrorCode(err) != pki.EBadRequest ||
		!strings.Contains(pki.ErrorMessage(err), "revoked as compromised") {
		t.Errorf("approval of a request for a compromised key: issued %v, %v; want refused", res != nil, err)
	}
}

// lateCompromiseStore revokes a certificate of the key for keyCompromise
// just before the first issuance is recorded, after the service's own
// check found the key clean: the race the store's check closes.
type lateCompromiseStore struct {
	store.Store
	revoke  func()
	revoked bool
}

func (s *lateCompromiseStore) CompromisedKey(ctx context.Context, keyHash []byte) (*store.CompromisedKey, error) {
	if !s.revoked {
		return nil, store.ErrNotFound
	}
	return s.Store.CompromisedKey(ctx, keyHash)
}

func (s *lateCompromiseStore) RecordIssuance(ctx context.Context, in store.Issuance) error {
	s.revokeOnce()
	return s.Store.RecordIssuance(ctx, in)
}

// CreateRequest revokes as RecordIssuance does: before a request is held.
func (s *lateCompromiseStore) CreateRequest(ctx context.Context, r pki.EnrollmentRequest, consume []byte, ev pki.AuditEvent) error {
	s.revokeOnce()
	return s.Store.CreateRequest(ctx, r, consume, ev)
}

func (s *lateCompromiseStore) revokeOnce() {
	if !s.revoked {
		s.revoke()
		s.revoked = true
	}
}

// A key revoked as compromised between the service's check and the
// transaction that holds its request for approval is refused as the check
// refuses it, and nothing is held: no approval could issue it.
func TestKeyCompromisedWhileHolding(t *testing.T) {
	held := pki.DefaultProfile()
	held.Name, held.RequireApproval = "approval", true
	profiles := map[string]pki.Profile{"default": pki.DefaultProfile(), "approval": held}
	f := newFixture(t, profiles, "default")
	ctx := context.Background()
	k := newKey(t)
	first, err := f.svc.Enroll(ctx, namedWithKey(t, k, static, "kchold", "kchold.example"))
	if err != nil {
		t.Fatal(err)
	}
	ls := &lateCompromiseStore{Store: f.st, revoke: func() {
		if _, err := f.admin.Revoke(ctx, first.Record.SerialHex, "", store.ReasonKeyCompromise, "cli:test"); err != nil {
			t.Fatal(err)
		}
	}}
	svc, err := enroll.New(ls, f.auth, f.clock, slog.New(slog.DiscardHandler), enroll.Config{StaticChallenge: static, Profiles: profiles, DefaultProfile: "default"})
	if err != nil {
		t.Fatal(err)
	}
	otp, _, err := f.admin.NewChallenge(ctx, time.Hour, "approval", "test")
	if err != nil {
		t.Fatal(err)
	}
	req := namedWithKey(t, k, otp, "kchold", "kchold.example")
	req.Profile, req.TransactionID = "approval", "tx-kchold-2"
	res, err := svc.Enroll(ctx, req)
	date := f.clock.Now().UTC().Format("2006-01-02")
	if pki.ErrorCode(err) != pki.EBadRequest || !strings.Contains(pki.ErrorMessage(err), "revoked as compromised on "+date) ||
		!strings.Contains(pki.ErrorMessage(err), first.Record.SerialHex) {
		t.Fatalf("held %v, %v; want refused, the key revoked as compromised", res != nil, err)
	}
	if reqs, _, err := f.st.ListRequests(ctx, store.RequestFilter{}); err != nil || len(reqs) != 0 {
		t.Errorf("requests held: %d, %v; want none", len(reqs), err)
	}
}

// A key revoked as compromised between the service's check and the
// issuance's transaction is refused as the check refuses it, audited,
// and nothing is recorded.
func TestKeyCompromisedWhileIssuing(t *testing.T) {
	f := newFixture(t, nil, "")
	ctx := context.Background()
	k := newKey(t)
	first, err := f.svc.Enroll(ctx, namedWithKey(t, k, static, "kcrace", "kcrace.example"))
	if err != nil {
		t.Fatal(err)
	}
	ls := &lateCompromiseStore{Store: f.st, revoke: func() {
		if _, err := f.admin.Revoke(ctx, first.Record.SerialHex, "", store.ReasonKeyCompromise, "cli:test"); err != nil {
			t.Fatal(err)
		}
	}}
	svc, err := enroll.New(ls, f.auth, f.clock, slog.New(slog.DiscardHandler), enroll.Config{StaticChallenge: static})
	if err != nil {
		t.Fatal(err)
	}
	req := namedWithKey(t, k, static, "kcrace", "kcrace.example")
	req.TransactionID = "tx-kcrace-2"
	res, err := svc.Enroll(ctx, req)
	date := f.clock.Now().UTC().Format("2006-01-02")
	if pki.ErrorCode(err) != pki.EBadRequest || !strings.Contains(pki.ErrorMessage(err), "revoked as compromised on "+date) ||
		!strings.Contains(pki.ErrorMessage(err), first.Record.SerialHex) {
		t.Fatalf("issued %v, %v; want refused, the key revoked as compromised", res != nil, err)
	}
	if !enroll.Audited(err) {
		t.Errorf("refusal not audited: %v", err)
	}
	certs, _, err := f.st.ListCertificates(ctx, store.CertFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(certs) != 1 {
		t.Errorf("%d certificates recorded, want the first only", len(certs))
	}
}
