package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// Exec runs SQL on a store's database behind its back, as someone with the
// database would.
type Exec func(t *testing.T, query string)

// RunAuditTampering checks what a store does with a trail changed outside
// it so that no event can be chained on: a record written after the head
// (next to it, or further on, or renumbered there, which leaves a gap that
// an append would fill), the head removed under records, or the records removed with the head
// beside certificates (each recorded with its event: a trail started
// again there would look like a fresh store's). Every change that appends an event
// (an append, a revocation, an issuance) is refused with
// store.ErrAuditTampered, not a driver error that the edges answer with
// 500, and nothing of it is written. open returns a new, empty store and
// the way to run SQL on its database; the SQL is written for both drivers.
func RunAuditTampering(t *testing.T, open func(t *testing.T) (store.Store, Exec)) {
	for _, c := range []struct {
		name string
		sql  []string
		// after is how far after the head the refusal's record is, which
		// it names with the head; 0: none is.
		after int64
	}{
		{"record after the head", []string{`INSERT INTO audit_events (id, time, type, actor, outcome, reason)
			SELECT MAX(id) + 1, 0, 'certificate.revoked', 'mallory', 'success', 'x' FROM audit_events`}, 1},
		{"record further after the head", []string{`INSERT INTO audit_events (id, time, type, actor, outcome, reason)
			SELECT MAX(id) + 5, 0, 'certificate.revoked', 'mallory', 'success', 'x' FROM audit_events`}, 5},
		{"newest record renumbered past the head", []string{
			`UPDATE audit_events SET id = id + 4 WHERE id = (SELECT MAX(id) FROM audit_events)`}, 4},
		{"older record renumbered past the head", []string{
			`UPDATE audit_events SET id = (SELECT MAX(id) + 4 FROM audit_events) WHERE id = (SELECT MIN(id) FROM audit_events)`}, 4},
		{"head removed", []string{`DELETE FROM audit_head`}, 0},
		{"records and head removed", []string{`DELETE FROM audit_events`, `DELETE FROM audit_head`}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s, exec := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			testAuditTampered(t, s, c.after, func(t *testing.T) {
				for _, q := range c.sql {
					exec(t, q)
				}
			})
		})
	}
}

func testAuditTampered(t *testing.T, s store.Store, after int64, tamper func(t *testing.T)) {
	ctx := context.Background()
	first := newCert(issuerA, "c0", t0.Add(time.Hour))
	mustRecord(t, s, issuance(first, issuedEvent(first)))
	// Two records at least, so that one in the middle can be moved.
	second := newCert(issuerA, "c2", t0.Add(time.Hour))
	mustRecord(t, s, issuance(second, issuedEvent(second)))
	tamper(t)
	before, err := s.AuditHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	count := func() int {
		t.Helper()
		events, err := s.AuditChain(ctx, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		return len(events)
	}
	records := count()
	refused := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, store.ErrAuditTampered) {
			t.Errorf("%s: %v, want ErrAuditTampered", what, err)
		}
		if pki.ErrorCode(err) != pki.EUnavailable || pki.ErrorMessage(err) != store.AuditTamperedMessage {
			t.Errorf("%s: code %s, message %q; want %s and the message that says to run audit verify",
				what, pki.ErrorCode(err), pki.ErrorMessage(err), pki.EUnavailable)
		}
		// The operator's log says which record is in the way.
		if want := fmt.Sprintf("record %d comes after the head, record %d", before.LastID+after, before.LastID); after != 0 &&
			(err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("%s: %v; want it to say %q", what, err, want)
		}
	}

	refused("AppendAudit", s.AppendAudit(ctx, pki.AuditEvent{Time: t0, Type: "test", Actor: "test", Outcome: "success"}))
	_, _, err = s.RevokeCertificate(ctx, issuerA, "c0", 1, t0, pki.AuditEvent{Type: pki.EventRevoked, SerialHex: "c0", IssuerID: issuerA})
	refused("RevokeCertificate", err)
	if got, err := s.Certificate(ctx, issuerA, "c0"); err != nil || got.Status != pki.StatusValid {
		t.Errorf("after the refused revocation: %+v, %v; want it valid still", got, err)
	}
	next := newCert(issuerA, "c1", t0.Add(time.Hour))
	refused("RecordIssuance", s.RecordIssuance(ctx, issuance(next, issuedEvent(next))))
	if _, err := s.Certificate(ctx, issuerA, "c1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after the refused issuance: %v, want ErrNotFound", err)
	}

	if n := count(); n != records {
		t.Errorf("%d records after the refused changes, want the %d there were", n, records)
	}
	if after, err := s.AuditHead(ctx); err != nil || after.LastID != before.LastID || after.Count != before.Count ||
		!bytes.Equal(after.LastHash, before.LastHash) {
		t.Errorf("head %+v after the refused changes (%v), want it as it was: %+v", after, err, before)
	}
}
