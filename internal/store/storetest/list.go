package storetest

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

const day = 24 * time.Hour

// inventory records n certificates with varied issuer, profile, status and
// NotAfter (ten share each NotAfter, so ties are broken by id) and returns
// them in insertion order.
func inventory(t *testing.T, s store.Store, n int) []pki.Certificate {
	t.Helper()
	certs := make([]pki.Certificate, n)
	for i := range certs {
		c := inventoryCert(i)
		mustRecord(t, s, issuance(c))
		certs[i] = c
	}
	return certs
}

// inventoryCert is inventory's certificate i.
func inventoryCert(i int) pki.Certificate {
	issuer := issuerA
	if i%4 == 3 {
		issuer = issuerB
	}
	c := newCert(issuer, serial(i), t0.Add(time.Duration((i*7)%25)*day))
	c.Profile = []string{"default", "wifi", "vpn"}[i%3]
	if i%5 == 0 {
		c.Status, c.RevokedAt, c.RevokeReason = pki.StatusRevoked, t0, 1
	}
	return c
}

// inventoryAtOnce records what inventory(t, s, n) does, from several
// goroutines at once, in no particular order: for tests that do not
// depend on the order, such as the page limits'. A store that commits
// writes in groups (SQLite's committer) then makes far fewer commits:
// one by one, the 1001 records of the limit tests cost some 7 s of CPU
// under the race detector.
func inventoryAtOnce(t *testing.T, s store.Store, n int) {
	t.Helper()
	const writers = 8
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := w; i < n; i += writers {
				c := inventoryCert(i)
				if err := s.RecordIssuance(context.Background(), issuance(c)); err != nil {
					errs <- fmt.Errorf("RecordIssuance(%s/%s): %w", c.IssuerID, c.SerialHex, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// expect applies f to certs (in insertion order) the way the contract
// describes: the filters, then (not_after, id) order when NotAfterBefore is
// set, else newest first.
func expect(certs []pki.Certificate, f store.CertFilter) []pki.Certificate {
	type rec struct {
		c   pki.Certificate
		seq int
	}
	var out []rec
	for i, c := range certs {
		switch {
		case !f.NotAfterBefore.IsZero() && !c.NotAfter.Before(f.NotAfterBefore),
			!f.NotAfterAfter.IsZero() && !c.NotAfter.After(f.NotAfterAfter),
			f.Status != "" && c.Status != f.Status,
			f.Profile != "" && c.Profile != f.Profile,
			f.IssuerID != "" && c.IssuerID != f.IssuerID:
			continue
		}
		out = append(out, rec{c, i})
	}
	if f.NotAfterBefore.IsZero() {
		slices.Reverse(out)
	} else {
		slices.SortStableFunc(out, func(a, b rec) int {
			return cmp.Or(a.c.NotAfter.Compare(b.c.NotAfter), cmp.Compare(a.seq, b.seq))
		})
	}
	res := make([]pki.Certificate, len(out))
	for i, r := range out {
		res[i] = r.c
	}
	return res
}

// walk pages through f and checks the paging rules: every page but the
// last is full, the last is non-empty unless nothing matches, and only the
// last has an empty cursor.
func walk(t *testing.T, s store.Store, f store.CertFilter, limit int) []pki.Certificate {
	t.Helper()
	f.Limit = limit
	var all []pki.Certificate
	for page := 0; ; page++ {
		certs, next, err := s.ListCertificates(context.Background(), f)
		if err != nil {
			t.Fatalf("ListCertificates page %d: %v", page, err)
		}
		all = append(all, certs...)
		if next == "" {
			if len(certs) == 0 && page > 0 {
				t.Errorf("page %d is empty: the previous page should have ended with an empty cursor", page)
			}
			return all
		}
		if len(certs) != limit {
			t.Fatalf("page %d has %d records and a next cursor; want full pages of %d", page, len(certs), limit)
		}
		if page > 10000 {
			t.Fatal("pagination does not end")
		}
		f.Cursor = next
	}
}

func key(c pki.Certificate) string { return c.IssuerID + "/" + c.SerialHex }

func sameList(t *testing.T, what string, got, want []pki.Certificate) {
	t.Helper()
	seen := map[string]bool{}
	for _, c := range got {
		if seen[key(c)] {
			t.Errorf("%s: %s returned twice", what, key(c))
		}
		seen[key(c)] = true
	}
	if len(got) != len(want) {
		t.Errorf("%s: %d records, want %d", what, len(got), len(want))
		return
	}
	for i := range got {
		if key(got[i]) != key(want[i]) {
			t.Errorf("%s: record %d is %s (NotAfter %v), want %s (NotAfter %v)",
				what, i, key(got[i]), got[i].NotAfter, key(want[i]), want[i].NotAfter)
			return
		}
	}
	for i := range got {
		sameCert(t, fmt.Sprintf("%s: record %d", what, i), got[i], want[i])
	}
}

func testListPagination(t *testing.T, s store.Store) {
	certs := inventory(t, s, 250)
	cases := []struct {
		name  string
		f     store.CertFilter
		limit int
	}{
		{"all, newest first", store.CertFilter{}, 100},
		{"all, pages fill exactly", store.CertFilter{}, 50},
		{"all, small pages", store.CertFilter{}, 7},
		{"unexpired", store.CertFilter{NotAfterAfter: t0.Add(10 * day)}, 100},
		{"revoked", store.CertFilter{Status: pki.StatusRevoked}, 100},
		{"valid wifi", store.CertFilter{Status: pki.StatusValid, Profile: "wifi"}, 100},
		{"issuer B", store.CertFilter{IssuerID: issuerB}, 10},
		{"every equality filter, unexpired", store.CertFilter{Status: pki.StatusValid, Profile: "default",
			IssuerID: issuerA, NotAfterAfter: t0.Add(3 * day)}, 5},
		{"all by expiry", store.CertFilter{NotAfterBefore: t0.Add(1000 * day)}, 100},
		{"all by expiry, small pages", store.CertFilter{NotAfterBefore: t0.Add(1000 * day)}, 9},
		{"expiring within 20 days", store.CertFilter{NotAfterBefore: t0.Add(20 * day)}, 100},
		{"expiring between", store.CertFilter{NotAfterAfter: t0.Add(5 * day), NotAfterBefore: t0.Add(15 * day)}, 100},
		{"valid and expiring", store.CertFilter{Status: pki.StatusValid, NotAfterBefore: t0.Add(20 * day)}, 100},
		{"vpn of issuer A expiring", store.CertFilter{Profile: "vpn", IssuerID: issuerA, NotAfterBefore: t0.Add(12 * day)}, 10},
		{"every filter by expiry", store.CertFilter{Status: pki.StatusValid, Profile: "wifi", IssuerID: issuerA,
			NotAfterAfter: t0, NotAfterBefore: t0.Add(24 * day)}, 4},
		{"no match", store.CertFilter{Profile: "nope"}, 100},
		{"no match by expiry", store.CertFilter{NotAfterBefore: t0}, 100},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sameList(t, tc.name, walk(t, s, tc.f, tc.limit), expect(certs, tc.f))
		})
	}
}

func testListStableUnderInserts(t *testing.T, s store.Store) {
	ctx := context.Background()
	certs := inventory(t, s, 250)
	for _, f := range []store.CertFilter{{}, {NotAfterBefore: t0.Add(1000 * day)}} {
		want := expect(certs, f)
		f.Limit = 100
		var got []pki.Certificate
		for {
			page, next, err := s.ListCertificates(ctx, f)
			if err != nil {
				t.Fatalf("ListCertificates: %v", err)
			}
			got = append(got, page...)
			if next == "" {
				break
			}
			f.Cursor = next
			// Newer records land before the cursor (newest first) or past
			// the NotAfterBefore bound (by expiry): the walk must neither
			// see them nor lose or repeat its place.
			c := newCert(issuerA, fmt.Sprintf("new-%d-%t", len(got), f.NotAfterBefore.IsZero()), t0.Add(2000*day))
			mustRecord(t, s, issuance(c))
		}
		sameList(t, fmt.Sprintf("walk with inserts (%+v)", f), got, want)
	}
}

func testListLimits(t *testing.T, s store.Store) {
	ctx := context.Background()
	inventoryAtOnce(t, s, 1001)
	for _, lc := range []struct{ limit, want int }{{0, 100}, {-3, 100}, {1, 1}, {1000, 1000}, {1001, 1000}, {5000, 1000}} {
		for _, f := range []store.CertFilter{{}, {NotAfterBefore: t0.Add(1000 * day)}} {
			f.Limit = lc.limit
			certs, next, err := s.ListCertificates(ctx, f)
			if err != nil {
				t.Fatalf("ListCertificates(Limit %d): %v", lc.limit, err)
			}
			if len(certs) != lc.want || next == "" {
				t.Errorf("ListCertificates(Limit %d, by expiry %t): %d records, cursor %q; want %d and a cursor",
					lc.limit, !f.NotAfterBefore.IsZero(), len(certs), next, lc.want)
			}
		}
	}
}

func testListBadCursor(t *testing.T, s store.Store) {
	ctx := context.Background()
	inventory(t, s, 10)
	byID := store.CertFilter{Limit: 3}
	byExpiry := store.CertFilter{Limit: 3, NotAfterBefore: t0.Add(1000 * day)}
	_, idCursor, err := s.ListCertificates(ctx, byID)
	if err != nil || idCursor == "" {
		t.Fatalf("ListCertificates: cursor %q, %v", idCursor, err)
	}
	_, expCursor, err := s.ListCertificates(ctx, byExpiry)
	if err != nil || expCursor == "" {
		t.Fatalf("ListCertificates: cursor %q, %v", expCursor, err)
	}
	byIssued := store.CertFilter{Limit: 3, IssuedAfter: t0.Add(-1000 * day), IssuedBefore: t0.Add(1000 * day)}
	_, issuedCursor, err := s.ListCertificates(ctx, byIssued)
	if err != nil || issuedCursor == "" {
		t.Fatalf("ListCertificates by issuance window: cursor %q, %v", issuedCursor, err)
	}
	bad := []struct {
		name   string
		f      store.CertFilter
		cursor string
	}{
		{"issuance cursor in expiry order", byExpiry, issuedCursor},
		{"issuance cursor in newest-first order", byID, issuedCursor},
		{"expiry cursor in issuance order", byIssued, expCursor},
		{"not base64", byID, "%%%"},
		{"not a cursor", byID, base64.RawURLEncoding.EncodeToString([]byte("hello"))},
		{"newest-first cursor in expiry order", byExpiry, idCursor},
		{"expiry cursor in newest-first order", byID, expCursor},
	}
	for _, b := range bad {
		b.f.Cursor = b.cursor
		if _, _, err := s.ListCertificates(ctx, b.f); err == nil {
			t.Errorf("%s: no error", b.name)
		}
	}
}

// start runs fn in n goroutines released together, and returns their errors.
func start(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-gate
			errs[i] = fn(i)
		})
	}
	close(gate)
	wg.Wait()
	return errs
}

func testConcurrentIssuance(t *testing.T, s store.Store) {
	const workers, each = 16, 50
	ctx := context.Background()
	errs := start(workers, func(w int) error {
		for i := range each {
			c := newCert(issuerA, fmt.Sprintf("%02x%04x", w, i), t0.Add(time.Duration(i)*time.Hour))
			if err := s.ReserveSerial(ctx, c.IssuerID, c.SerialHex, nil, t0); err != nil {
				return fmt.Errorf("ReserveSerial %s: %w", c.SerialHex, err)
			}
			if err := s.RecordIssuance(ctx, issuance(c, issuedEvent(c))); err != nil {
				return fmt.Errorf("RecordIssuance %s: %w", c.SerialHex, err)
			}
		}
		return nil
	})
	for w, err := range errs {
		if err != nil {
			t.Errorf("worker %d: %v", w, err)
		}
	}
	if got := walk(t, s, store.CertFilter{}, 1000); len(got) != workers*each {
		t.Errorf("%d certificates recorded, want %d", len(got), workers*each)
	}
	if got := listAudit(t, s, store.AuditFilter{Limit: 1000}); len(got) != workers*each {
		t.Errorf("%d events recorded, want %d", len(got), workers*each)
	}
}

func isConflict(err error) bool { return errors.Is(err, store.ErrConflict) }

// exactlyOneWins checks that one of the concurrent calls succeeded and
// every other one failed with the expected error.
func exactlyOneWins(t *testing.T, errs []error, loser error, what string) {
	t.Helper()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, loser):
			t.Errorf("goroutine %d: %v, want nil or %v", i, err, loser)
		}
	}
	if won != 1 {
		t.Errorf("%d %s, want exactly 1", won, what)
	}
}

func testConcurrentReserveSameSerial(t *testing.T, s store.Store) {
	ctx := context.Background()
	errs := start(16, func(int) error { return s.ReserveSerial(ctx, issuerA, "5a5a", nil, t0) })
	exactlyOneWins(t, errs, store.ErrConflict, "goroutines reserved the serial")
}

func testConcurrentChallengeConsumption(t *testing.T, s store.Store) {
	ctx := context.Background()
	ch := pki.Challenge{ID: "once", Hash: []byte("hash-once"), CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	if err := s.CreateChallenge(ctx, ch, pki.AuditEvent{Type: pki.EventChallengeCreated}); err != nil {
		t.Fatalf("CreateChallenge: %v", err)
	}
	errs := start(16, func(i int) error {
		c := newCert(issuerA, fmt.Sprintf("c0%02x", i), t0.Add(time.Hour))
		in := issuance(c, issuedEvent(c))
		in.ConsumeChallengeHash = ch.Hash
		return s.RecordIssuance(ctx, in)
	})
	exactlyOneWins(t, errs, store.ErrChallengeUnusable, "issuances consumed the challenge")
	if got := walk(t, s, store.CertFilter{}, 100); len(got) != 1 {
		t.Errorf("%d certificates recorded, want 1", len(got))
	}
	if got := listAudit(t, s, store.AuditFilter{Type: pki.EventIssued}); len(got) != 1 {
		t.Errorf("%d issued events recorded, want 1", len(got))
	}
}
