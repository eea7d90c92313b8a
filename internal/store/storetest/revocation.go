package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

func testRevokeCertificate(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, sn := range []string{"a0", "a1", "a2"} {
		mustRecord(t, s, issuance(newCert(issuerA, sn, t0.Add(time.Hour))))
	}
	at := t0.Add(10 * time.Minute)
	ev := func(serial string) pki.AuditEvent {
		return pki.AuditEvent{Type: pki.EventRevoked, Actor: "cli:root", SerialHex: serial, IssuerID: issuerA, Outcome: "success"}
	}

	steps := []struct {
		name           string
		issuer, serial string
		reason         int
		at             time.Time
		want           error
		changed        bool
		// what the record says afterwards
		wantReason int
		wantAt     time.Time
		// the Detail of the event appended, which the store decides
		wantDetail string
	}{
		{"valid certificate", issuerA, "a0", 1, at, nil, true, 1, at, ""},
		{"reason 0 (unspecified)", issuerA, "a1", 0, at, nil, true, 0, at, ""},
		{"again, same reason: idempotent", issuerA, "a0", 1, at.Add(time.Hour), nil, false, 1, at, ""},
		{"again, other reason: kept as it was", issuerA, "a0", 4, at.Add(time.Hour), nil, false, 1, at, ""},
		{"on hold", issuerA, "a2", 6, at, nil, true, 6, at, ""},
		{"on hold again", issuerA, "a2", 6, at.Add(time.Minute), nil, false, 6, at, ""},
		{"hold made permanent keeps the hold's time", issuerA, "a2", 1, at.Add(time.Hour), nil, true, 1, at, store.DetailHoldMadePermanent},
		{"unknown serial", issuerA, "ff", 1, at, store.ErrNotFound, false, 0, time.Time{}, ""},
		{"serial of another issuer", issuerB, "a0", 1, at, store.ErrNotFound, false, 0, time.Time{}, ""},
	}
	for _, st := range steps {
		before := len(listAudit(t, s, store.AuditFilter{}))
		stateBefore := revocationState(t, s)[st.issuer]
		got, changed, err := s.RevokeCertificate(ctx, st.issuer, st.serial, st.reason, st.at, ev(st.serial))
		wantErr(t, st.name, err, st.want)
		after := listAudit(t, s, store.AuditFilter{})
		stateAfter := revocationState(t, s)[st.issuer]
		if st.want != nil {
			if len(after) != before || stateAfter != stateBefore {
				t.Errorf("%s: a failed revocation appended %d events and moved the state by %d", st.name, len(after)-before, stateAfter-stateBefore)
			}
			continue
		}
		if changed != st.changed {
			t.Errorf("%s: changed = %v, want %v", st.name, changed, st.changed)
		}
		if got == nil || got.Status != pki.StatusRevoked || got.RevokeReason != st.wantReason || !got.RevokedAt.Equal(st.wantAt) {
			t.Errorf("%s: returned %+v, want revoked at %v, reason %d", st.name, got, st.wantAt, st.wantReason)
		} else if got.RevokedBy != "cli:root" {
			t.Errorf("%s: RevokedBy %q, want cli:root", st.name, got.RevokedBy)
		}
		stored, err := s.Certificate(ctx, st.issuer, st.serial)
		if err != nil {
			t.Fatal(err)
		}
		if stored.Status != pki.StatusRevoked || stored.RevokeReason != st.wantReason || !stored.RevokedAt.Equal(st.wantAt) {
			t.Errorf("%s: stored %s reason %d at %v, want revoked reason %d at %v", st.name, stored.Status,
				stored.RevokeReason, stored.RevokedAt, st.wantReason, st.wantAt)
		}
		switch {
		case st.changed && (len(after) != before+1 || stateAfter != stateBefore+1):
			t.Errorf("%s: %d new events and state +%d, want 1 and +1", st.name, len(after)-before, stateAfter-stateBefore)
		case st.changed:
			want := ev(st.serial)
			want.Time = st.at // zero Time takes the revocation time
			want.Detail = st.wantDetail
			sameEvent(t, st.name+": event", after[0], want)
		case len(after) != before || stateAfter != stateBefore:
			t.Errorf("%s: an idempotent revocation appended %d events and moved the state by %d", st.name,
				len(after)-before, stateAfter-stateBefore)
		}
	}
}

// testRevokeAfterUnhold: the detail of a revocation is decided in its
// transaction. A caller that read a hold, raced by an unhold, revokes a
// valid certificate: a fresh revocation, no hold made permanent.
func testRevokeAfterUnhold(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustRecord(t, s, issuance(newCert(issuerA, "e0", t0.Add(time.Hour))))
	if _, _, err := s.RevokeCertificate(ctx, issuerA, "e0", 6, t0, pki.AuditEvent{Type: pki.EventRevoked}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.UnholdCertificate(ctx, issuerA, "e0", t0.Add(time.Minute), pki.AuditEvent{Type: pki.EventUnheld}); err != nil {
		t.Fatal(err)
	}
	later := t0.Add(2 * time.Minute)
	c, changed, err := s.RevokeCertificate(ctx, issuerA, "e0", 1, later, pki.AuditEvent{Type: pki.EventRevoked, Actor: "cli:root"})
	if err != nil || !changed || !c.RevokedAt.Equal(later) {
		t.Fatalf("revoking a lifted hold: %+v, %v, %v; want revoked at %v", c, changed, err, later)
	}
	evs := listAudit(t, s, store.AuditFilter{})
	if len(evs) == 0 {
		t.Fatal("no events")
	}
	if evs[0].Type != pki.EventRevoked || evs[0].Detail != "" {
		t.Errorf("newest event %+v, want a revocation without detail", evs[0])
	}
}

func testUnhold(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, sn := range []string{"b0", "b1", "b2"} {
		mustRecord(t, s, issuance(newCert(issuerA, sn, t0.Add(time.Hour))))
	}
	at := t0.Add(time.Minute)
	revoke := func(serial string, reason int) {
		t.Helper()
		if _, _, err := s.RevokeCertificate(ctx, issuerA, serial, reason, at, pki.AuditEvent{Type: pki.EventRevoked}); err != nil {
			t.Fatal(err)
		}
	}
	revoke("b0", 6)
	revoke("b1", 1)
	ev := pki.AuditEvent{Type: pki.EventUnheld, Actor: "cli:root", Outcome: "success"}
	steps := []struct {
		name       string
		serial     string
		want       error
		changed    bool
		wantStatus pki.CertStatus
	}{
		{"on hold", "b0", nil, true, pki.StatusValid},
		{"valid again: idempotent", "b0", nil, false, pki.StatusValid},
		{"never held", "b2", nil, false, pki.StatusValid},
		{"revoked for good", "b1", store.ErrConflict, false, pki.StatusRevoked},
		{"unknown", "ff", store.ErrNotFound, false, ""},
	}
	for _, st := range steps {
		before := len(listAudit(t, s, store.AuditFilter{}))
		stateBefore := revocationState(t, s)[issuerA]
		got, changed, err := s.UnholdCertificate(ctx, issuerA, st.serial, at.Add(time.Hour), ev)
		wantErr(t, st.name, err, st.want)
		if changed != st.changed {
			t.Errorf("%s: changed = %v, want %v", st.name, changed, st.changed)
		}
		if err == nil && (got.Status != st.wantStatus || !got.RevokedAt.IsZero() || got.RevokeReason != 0 || got.RevokedBy != "") {
			t.Errorf("%s: returned %s at %v reason %d by %q, want %s and no revocation", st.name, got.Status,
				got.RevokedAt, got.RevokeReason, got.RevokedBy, st.wantStatus)
		}
		nEvents, dState := len(listAudit(t, s, store.AuditFilter{}))-before, revocationState(t, s)[issuerA]-stateBefore
		if want := map[bool]int{true: 1}[st.changed]; nEvents != want || dState != int64(want) {
			t.Errorf("%s: %d events and state +%d, want %d", st.name, nEvents, dState, want)
		}
	}
	c, err := s.Certificate(ctx, issuerA, "b1")
	if err != nil || c.Status != pki.StatusRevoked || c.RevokeReason != 1 {
		t.Errorf("b1 after a refused unhold: %+v, %v; want revoked, reason 1", c, err)
	}
	// A lifted hold can be revoked again, with a new time.
	later := at.Add(2 * time.Hour)
	c, changed, err := s.RevokeCertificate(ctx, issuerA, "b0", 1, later, pki.AuditEvent{Type: pki.EventRevoked})
	if err != nil || !changed || !c.RevokedAt.Equal(later) {
		t.Errorf("revoking a lifted hold: %+v, %v, %v; want revoked at %v", c, changed, err, later)
	}
}

func revocationState(t *testing.T, s store.Store) map[string]int64 {
	t.Helper()
	st, err := s.RevocationState(context.Background())
	if err != nil {
		t.Fatalf("RevocationState: %v", err)
	}
	return st
}

// testRevocationState: every change of revocation status, superseding
// renewals included, moves the issuer's counter; RevokedCertificates lists
// an issuer's revoked, unexpired certificates.
func testRevocationState(t *testing.T, s store.Store) {
	ctx := context.Background()
	if st := revocationState(t, s); len(st) != 0 {
		t.Errorf("new store: revocation state %v, want empty", st)
	}
	mustRecord(t, s, issuance(newCert(issuerA, "c0", t0.Add(time.Hour))))
	mustRecord(t, s, issuance(newCert(issuerA, "c1", t0.Add(time.Minute))))
	mustRecord(t, s, issuance(newCert(issuerB, "c0", t0.Add(time.Hour))))
	mustRecord(t, s, issuance(newCert(issuerA, "c2", t0.Add(time.Hour))))
	if st := revocationState(t, s); len(st) != 0 {
		t.Errorf("after issuance only: revocation state %v, want empty", st)
	}
	at := t0.Add(10 * time.Second)
	for _, r := range []struct {
		issuer, serial string
		reason         int
	}{{issuerA, "c0", 1}, {issuerA, "c1", 0}, {issuerB, "c0", 6}} {
		if _, _, err := s.RevokeCertificate(ctx, r.issuer, r.serial, r.reason, at, pki.AuditEvent{Type: pki.EventRevoked}); err != nil {
			t.Fatal(err)
		}
	}
	if st := revocationState(t, s); st[issuerA] != 2 || st[issuerB] != 1 {
		t.Errorf("revocation state %v, want A: 2, B: 1", st)
	}
	// A renewal that supersedes c2 counts too.
	in := issuance(newCert(issuerA, "c3", t0.Add(2*time.Hour)))
	in.Supersede = &store.CertRef{IssuerID: issuerA, SerialHex: "c2"}
	mustRecord(t, s, in)
	if st := revocationState(t, s); st[issuerA] != 3 {
		t.Errorf("after a superseding renewal: state of A %d, want 3", st[issuerA])
	}

	got, err := s.RevokedCertificates(ctx, issuerA, t0.Add(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	// c1 expired before the cut-off; c2 was superseded at in.Now.
	want := map[string]store.RevokedEntry{
		"c0": {SerialHex: "c0", RevokedAt: at, Reason: 1},
		"c2": {SerialHex: "c2", RevokedAt: in.Now, Reason: 4},
	}
	if len(got) != len(want) {
		t.Fatalf("RevokedCertificates(A): %+v, want %+v", got, want)
	}
	for _, e := range got {
		w, ok := want[e.SerialHex]
		if !ok || !e.RevokedAt.Equal(w.RevokedAt) || e.Reason != w.Reason {
			t.Errorf("RevokedCertificates(A): entry %+v, want %+v", e, w)
		}
	}
	if got, err := s.RevokedCertificates(ctx, issuerA, t0); err != nil || len(got) != 3 {
		t.Errorf("RevokedCertificates(A) with an earlier cut-off: %d entries, %v; want 3", len(got), err)
	}
	if got, err := s.RevokedCertificates(ctx, "c0ffee", t0); err != nil || len(got) != 0 {
		t.Errorf("RevokedCertificates(unknown issuer): %+v, %v; want none", got, err)
	}
}

func testCRLs(t *testing.T, s store.Store) {
	ctx := context.Background()
	if _, err := s.LatestCRL(ctx, issuerA); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("LatestCRL of a new store: %v, want ErrNotFound", err)
	}
	if _, err := s.LatestCRLNumber(ctx, issuerA); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("LatestCRLNumber of a new store: %v, want ErrNotFound", err)
	}
	crl := func(issuer string, n int64) store.CRL {
		return store.CRL{IssuerID: issuer, Number: n, ThisUpdate: t0.Add(time.Duration(n) * time.Minute),
			NextUpdate: t0.Add(24 * time.Hour), RevocationSeq: n * 10, Entries: int(n), DER: []byte(fmt.Sprintf("crl-%s-%d", issuer[:1], n)),
			CreatedAt: t0.Add(time.Duration(n) * time.Minute)}
	}
	const issuerC = "c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3"
	steps := []struct {
		name string
		crl  store.CRL
		want error
	}{
		{"first", crl(issuerA, 1), nil},
		{"same number again (another node was first)", crl(issuerA, 1), store.ErrConflict},
		{"next", crl(issuerA, 2), nil},
		{"other issuer counts apart", crl(issuerB, 1), nil},
		{"third", crl(issuerA, 3), nil},
		// A node whose store was restored from an older copy numbers
		// above the CRLs it published before.
		{"skipping numbers", crl(issuerA, 6), nil},
		{"below the newest (a node behind)", crl(issuerA, 5), store.ErrConflict},
		{"the newest again", crl(issuerA, 6), store.ErrConflict},
		{"first of an issuer above 1 (restored from before its first)", crl(issuerC, 4), nil},
	}
	for _, st := range steps {
		wantErr(t, "PutCRL "+st.name, s.PutCRL(ctx, st.crl, 2), st.want)
	}
	for _, w := range []store.CRL{crl(issuerA, 6), crl(issuerB, 1), crl(issuerC, 4)} {
		got, err := s.LatestCRL(ctx, w.IssuerID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Number != w.Number || !bytes.Equal(got.DER, w.DER) || !got.ThisUpdate.Equal(w.ThisUpdate) ||
			!got.NextUpdate.Equal(w.NextUpdate) || got.RevocationSeq != w.RevocationSeq || got.Entries != w.Entries ||
			!got.CreatedAt.Equal(w.CreatedAt) || got.IssuerID != w.IssuerID {
			t.Errorf("LatestCRL(%s): %+v, want %+v", w.IssuerID[:4], got, w)
		}
		if n, err := s.LatestCRLNumber(ctx, w.IssuerID); err != nil || n != w.Number {
			t.Errorf("LatestCRLNumber(%s) = %d, %v; want %d", w.IssuerID[:4], n, err, w.Number)
		}
	}
	// Numbers keep growing after old generations are pruned.
	wantErr(t, "PutCRL after pruning", s.PutCRL(ctx, crl(issuerA, 7), 2), nil)
	if err := s.PutCRL(ctx, store.CRL{IssuerID: issuerA, Number: 8}, 2); err == nil {
		t.Error("PutCRL without DER or times succeeded")
	}
}

func testAuditTimeFilter(t *testing.T, s store.Store) {
	var all []pki.AuditEvent
	for i := range 10 {
		all = append(all, pki.AuditEvent{Time: t0.Add(time.Duration(i) * time.Minute), Type: "t", Detail: fmt.Sprint(i)})
	}
	if err := s.AppendAudit(context.Background(), all...); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		f        store.AuditFilter
		from, to int // all[from:to], newest first
	}{
		{"since", store.AuditFilter{Since: t0.Add(3 * time.Minute)}, 3, 10},
		{"until", store.AuditFilter{Until: t0.Add(3 * time.Minute)}, 0, 3},
		{"between", store.AuditFilter{Since: t0.Add(2 * time.Minute), Until: t0.Add(5*time.Minute + time.Second)}, 2, 6},
		{"since later than all", store.AuditFilter{Since: t0.Add(time.Hour)}, 0, 0},
	}
	for _, c := range cases {
		got := listAudit(t, s, c.f)
		if len(got) != c.to-c.from {
			t.Errorf("%s: %d events, want %d", c.name, len(got), c.to-c.from)
			continue
		}
		for i, e := range got {
			sameEvent(t, fmt.Sprintf("%s: event %d", c.name, i), e, all[c.to-1-i])
		}
	}
}

// testAuditChain: every append, through every method that writes events,
// chains its records: ids in order, each PrevHash the Hash of the record
// before, each Hash pki.AuditChainHash of its content; the head names the
// newest.
func testAuditChain(t *testing.T, s store.Store) {
	ctx := context.Background()
	head, err := s.AuditHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if head.LastID != 0 || head.Count != 0 || !bytes.Equal(head.LastHash, pki.AuditGenesis) {
		t.Errorf("empty trail: head %+v, want zero with the genesis hash", head)
	}
	if err := s.AppendAudit(ctx, pki.AuditEvent{Time: t0, Type: "a"}, pki.AuditEvent{Time: t0, Type: "b"}); err != nil {
		t.Fatal(err)
	}
	mustRecord(t, s, issuance(newCert(issuerA, "d0", t0.Add(time.Hour))))
	if _, _, err := s.RevokeCertificate(ctx, issuerA, "d0", 6, t0, pki.AuditEvent{Type: pki.EventRevoked}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.UnholdCertificate(ctx, issuerA, "d0", t0, pki.AuditEvent{Type: pki.EventUnheld}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateChallenge(ctx, pki.Challenge{ID: "ch", Hash: []byte("h"), CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)},
		pki.AuditEvent{Type: pki.EventChallengeCreated}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := s.AppendAudit(ctx, pki.AuditEvent{Time: t0.Add(time.Duration(i) * time.Microsecond), Type: "c",
			Detail: fmt.Sprintf("line\n%d\x00", i)}); err != nil {
			t.Fatal(err)
		}
	}
	var chain []pki.AuditEvent
	for after := int64(0); ; {
		page, err := s.AuditChain(ctx, after, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		chain = append(chain, page...)
		after = page[len(page)-1].ID
	}
	listed := listAudit(t, s, store.AuditFilter{Limit: 1000})
	if len(chain) != len(listed) || len(chain) < 8 {
		t.Fatalf("AuditChain walked %d records, ListAudit has %d", len(chain), len(listed))
	}
	prev := pki.AuditGenesis
	for i, e := range chain {
		if i > 0 && e.ID <= chain[i-1].ID {
			t.Errorf("record %d: id %d not above %d", i, e.ID, chain[i-1].ID)
		}
		if !bytes.Equal(e.PrevHash, prev) {
			t.Errorf("record %d (id %d): PrevHash %x, want %x", i, e.ID, e.PrevHash, prev)
		}
		if want := pki.AuditChainHash(prev, e); !bytes.Equal(e.Hash, want) {
			t.Errorf("record %d (id %d): Hash %x, want %x", i, e.ID, e.Hash, want)
		}
		plain := e
		plain.PrevHash, plain.Hash = nil, nil
		sameEvent(t, fmt.Sprintf("record %d as listed", i), listed[len(listed)-1-i], plain)
		prev = e.Hash
	}
	head, err = s.AuditHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	last := chain[len(chain)-1]
	if head.LastID != last.ID || !bytes.Equal(head.LastHash, last.Hash) || head.Count != int64(len(chain)) {
		t.Errorf("head %+v, want id %d, hash %x, count %d", head, last.ID, last.Hash, len(chain))
	}
	// A write that fails appends nothing to the chain.
	if _, _, err := s.RevokeCertificate(ctx, issuerA, "nope", 1, t0, pki.AuditEvent{Type: pki.EventRevoked}); err == nil {
		t.Fatal("revoking an unknown certificate succeeded")
	}
	if again, err := s.AuditHead(ctx); err != nil || again.LastID != head.LastID || again.Count != head.Count {
		t.Errorf("head after a failed write: %+v, %v; want %+v", again, err, head)
	}
}
