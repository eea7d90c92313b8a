package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// errAny, as a wanted error, accepts any non-nil error: a refusal whose
// kind the contract does not name (a bug in the caller, not a conflict).
var errAny = errors.New("any error")

func wantErrAny(t *testing.T, what string, got, want error) {
	t.Helper()
	if want == errAny {
		if got == nil {
			t.Errorf("%s: no error", what)
		}
		return
	}
	wantErr(t, what, got, want)
}

// newRequest returns a fully populated pending request, so a round trip
// checks every field.
func newRequest(id, profile, txID string) pki.EnrollmentRequest {
	return pki.EnrollmentRequest{
		ID:            id,
		TransactionID: txID,
		Profile:       profile,
		Protocol:      pki.ProtocolSCEP,
		Status:        pki.RequestPending,
		Subject:       "CN=device-" + id + ",O=scepter",
		SANs:          []string{id + ".example", "198.51.100.9"},
		CSR:           []byte{0x30, 0x82, 0x02, 'c', 's', 'r', byte(len(id))},
		ClientCert:    []byte{0x30, 0x82, 0x03, 's', 'i', 'g', 'n'},
		RequesterAddr: "198.51.100.7:40000",
		CreatedAt:     t0,
		ExpiresAt:     t0.Add(7 * day),
		RenewedFrom:   issuerA + ":0bad",
		ChallengeHash: []byte("0123456789abcdef0123456789abcdef"),
	}
}

func pendingEvent(r pki.EnrollmentRequest) pki.AuditEvent {
	return pki.AuditEvent{Type: pki.EventRequestPending, Actor: "scep:198.51.100.7", Profile: r.Profile,
		Subject: r.Subject, TransactionID: r.TransactionID, Outcome: "success"}
}

func mustCreateRequest(t *testing.T, s store.Store, r pki.EnrollmentRequest) {
	t.Helper()
	if err := s.CreateRequest(context.Background(), r, nil, pendingEvent(r)); err != nil {
		t.Fatalf("CreateRequest(%s): %v", r.ID, err)
	}
}

func normRequest(r pki.EnrollmentRequest) pki.EnrollmentRequest {
	r.CreatedAt = normTime(r.CreatedAt)
	r.ExpiresAt = normTime(r.ExpiresAt)
	r.DecidedAt = normTime(r.DecidedAt)
	if len(r.SANs) == 0 {
		r.SANs = nil
	}
	if len(r.ClientCert) == 0 {
		r.ClientCert = nil
	}
	if len(r.ChallengeHash) == 0 {
		r.ChallengeHash = nil
	}
	return r
}

// decidedAt sets r as a store reads it back decided at: DecidedAt, and
// ExpiresAt its retention from then (or as created, when that is later).
func decidedAt(r *pki.EnrollmentRequest, at time.Time) {
	r.DecidedAt = at
	if end := at.Add(r.ExpiresAt.Sub(r.CreatedAt)); end.After(r.ExpiresAt) {
		r.ExpiresAt = end
	}
}

func sameRequest(t *testing.T, what string, got, want pki.EnrollmentRequest) {
	t.Helper()
	if g, w := normRequest(got), normRequest(want); !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, g, w)
	}
}

func getRequest(t *testing.T, s store.Store, id string) pki.EnrollmentRequest {
	t.Helper()
	r, err := s.Request(context.Background(), id)
	if err != nil {
		t.Fatalf("Request(%s): %v", id, err)
	}
	return *r
}

func countAudit(t *testing.T, s store.Store) int {
	t.Helper()
	return len(listAudit(t, s, store.AuditFilter{Limit: 1000}))
}

func testCreateRequest(t *testing.T, s store.Store) {
	ctx := context.Background()
	first := newRequest("r-1", "default", "tx-1")
	noStatus := newRequest("r-0", "default", "tx-0")
	noStatus.Status = "" // stored as pending
	noStatus.SANs, noStatus.ClientCert, noStatus.RenewedFrom, noStatus.ChallengeHash = []string{}, nil, "", nil
	issued := newRequest("r-x", "default", "tx-x")
	issued.Status = pki.RequestIssued
	noCSR := newRequest("r-y", "default", "tx-y")
	noCSR.CSR = nil
	noExpiry := newRequest("r-z", "default", "tx-z")
	noExpiry.ExpiresAt = time.Time{}

	creates := []struct {
		name string
		r    pki.EnrollmentRequest
		want error
	}{
		{"first", first, nil},
		{"zero Status is pending", noStatus, nil},
		{"same ID", newRequest("r-1", "other", "tx-other"), store.ErrConflict},
		{"same profile and transaction, still pending", newRequest("r-2", "default", "tx-1"), store.ErrConflict},
		{"same transaction, other profile", newRequest("r-3", "vpn", "tx-1"), nil},
		{"same profile, other transaction", newRequest("r-4", "default", "tx-2"), nil},
		{"created as issued", issued, errAny},
		{"no CSR", noCSR, errAny},
		{"no retention", noExpiry, errAny},
	}
	for _, c := range creates {
		before := countAudit(t, s)
		err := s.CreateRequest(ctx, c.r, nil, pendingEvent(c.r))
		wantErrAny(t, "CreateRequest "+c.name, err, c.want)
		after := listAudit(t, s, store.AuditFilter{Limit: 1000})
		switch {
		case c.want == nil && len(after) != before+1:
			t.Errorf("CreateRequest %s: %d new events, want 1", c.name, len(after)-before)
		case c.want == nil:
			want := pendingEvent(c.r)
			want.Time = c.r.CreatedAt // zero Time takes CreatedAt
			sameEvent(t, "CreateRequest "+c.name+": event", after[0], want)
		case len(after) != before:
			t.Errorf("CreateRequest %s: failed creation appended %d events", c.name, len(after)-before)
		}
	}

	for _, want := range []pki.EnrollmentRequest{first, noStatus, newRequest("r-3", "vpn", "tx-1")} {
		want.Status = pki.RequestPending
		sameRequest(t, "Request "+want.ID, getRequest(t, s, want.ID), want)
	}
	if r := getRequest(t, s, "r-1"); r.Profile != "default" || r.TransactionID != "tx-1" {
		t.Errorf("the refused creation with the same ID changed the request: %+v", r)
	}
}

// testPendingUniqueness: only a pending request blocks its (profile,
// transaction ID); once decided, either way, the client may start over.
func testPendingUniqueness(t *testing.T, s store.Store) {
	ctx := context.Background()
	reject := func(t *testing.T, id string) {
		t.Helper()
		if err := s.RejectRequest(ctx, id, "no", "cli:root", t0.Add(time.Minute), pki.AuditEvent{Type: pki.EventRequestRejected}); err != nil {
			t.Fatalf("RejectRequest(%s): %v", id, err)
		}
	}
	issue := func(t *testing.T, id string) {
		t.Helper()
		c := newCert(issuerA, "1d-"+id, t0.Add(day))
		in := issuance(c)
		in.CompleteRequestID, in.ApprovedBy = id, "cli:root"
		mustRecord(t, s, in)
	}
	seq := []struct {
		name string
		id   string
		want error
		then func(t *testing.T, id string)
	}{
		{"first request", "a", nil, nil},
		{"repeat while pending", "b", store.ErrConflict, nil},
		{"repeat again while pending", "c", store.ErrConflict, reject},
		{"after the pending one was rejected", "d", nil, nil},
		{"repeat while the new one is pending", "e", store.ErrConflict, issue},
		{"after the pending one was issued", "f", nil, nil},
	}
	pendingID := ""
	for _, st := range seq {
		err := s.CreateRequest(ctx, newRequest(st.id, "default", "tx"), nil, pki.AuditEvent{Type: pki.EventRequestPending})
		wantErr(t, st.name, err, st.want)
		if err == nil {
			pendingID = st.id
		}
		if st.then != nil {
			st.then(t, pendingID)
		}
	}

	// The newest request of the transaction is the one answered.
	got, err := s.RequestByTransaction(ctx, "default", "tx", store.RequestKeys{})
	if err != nil {
		t.Fatalf("RequestByTransaction: %v", err)
	}
	if got.ID != "f" || got.Status != pki.RequestPending {
		t.Errorf("RequestByTransaction: %s (%s), want f (pending)", got.ID, got.Status)
	}
	for id, want := range map[string]pki.RequestStatus{"a": pki.RequestRejected, "d": pki.RequestIssued, "f": pki.RequestPending} {
		if r := getRequest(t, s, id); r.Status != want {
			t.Errorf("request %s: %s, want %s", id, r.Status, want)
		}
	}
	for _, id := range []string{"b", "c", "e"} {
		_, err := s.Request(ctx, id)
		wantErr(t, "refused request "+id, err, store.ErrNotFound)
	}
}

func testConcurrentCreateRequest(t *testing.T, s store.Store) {
	ctx := context.Background()
	errs := start(8, func(i int) error {
		r := newRequest(fmt.Sprintf("c-%d", i), "default", "same-tx")
		return s.CreateRequest(ctx, r, nil, pendingEvent(r))
	})
	exactlyOneWins(t, errs, store.ErrConflict, "pending requests created for one transaction")
	if got, _, err := s.ListRequests(ctx, store.RequestFilter{}); err != nil || len(got) != 1 {
		t.Errorf("ListRequests: %d requests, %v; want 1", len(got), err)
	}
	if got := listAudit(t, s, store.AuditFilter{Type: pki.EventRequestPending}); len(got) != 1 {
		t.Errorf("%d request.pending events, want 1", len(got))
	}
}

func testRequestLookups(t *testing.T, s store.Store) {
	ctx := context.Background()
	a := newRequest("l-a", "default", "tx-a")
	b := newRequest("l-b", "vpn", "tx-a")
	b.SANs, b.ClientCert = nil, nil
	mustCreateRequest(t, s, a)
	mustCreateRequest(t, s, b)

	byID := []struct {
		id   string
		want *pki.EnrollmentRequest
	}{
		{"l-a", &a},
		{"l-b", &b},
		{"l-unknown", nil},
		{"", nil},
	}
	for _, l := range byID {
		got, err := s.Request(ctx, l.id)
		if l.want == nil {
			wantErr(t, "Request "+l.id, err, store.ErrNotFound)
			continue
		}
		if err != nil {
			t.Errorf("Request %s: %v", l.id, err)
			continue
		}
		sameRequest(t, "Request "+l.id, *got, *l.want)
	}

	byTx := []struct {
		name, profile, tx string
		want              *pki.EnrollmentRequest
	}{
		{"default profile", "default", "tx-a", &a},
		{"vpn profile", "vpn", "tx-a", &b},
		{"unknown transaction", "default", "tx-b", nil},
		{"transaction of another profile", "wifi", "tx-a", nil},
	}
	for _, l := range byTx {
		got, err := s.RequestByTransaction(ctx, l.profile, l.tx, store.RequestKeys{})
		if l.want == nil {
			wantErr(t, "RequestByTransaction "+l.name, err, store.ErrNotFound)
			continue
		}
		if err != nil {
			t.Errorf("RequestByTransaction %s: %v", l.name, err)
			continue
		}
		sameRequest(t, "RequestByTransaction "+l.name, *got, *l.want)
	}
}

func testListRequests(t *testing.T, s store.Store) {
	ctx := context.Background()
	var all []pki.EnrollmentRequest // insertion order
	// now is the time of the listings with Now: the requests created with
	// the retention of one hour are past it then (q-00, q-15 and q-20
	// pending, so expired; q-05, q-25 rejected and q-10 issued stay so),
	// q-03's runs out at now exactly (expired, as approval judges it) and
	// q-04's a microsecond after (pending).
	now := t0.Add(2 * time.Hour)
	for i := range 30 {
		r := newRequest(fmt.Sprintf("q-%02d", i), []string{"default", "vpn", "wifi"}[i%3], fmt.Sprintf("tx-%d", i))
		switch {
		case i%5 == 0:
			r.ExpiresAt = t0.Add(time.Hour)
		case i == 3:
			r.ExpiresAt = now
		case i == 4:
			r.ExpiresAt = now.Add(time.Microsecond)
		}
		mustCreateRequest(t, s, r)
		all = append(all, r)
	}
	at := t0.Add(time.Hour)
	for i := range all {
		switch i % 4 {
		case 1:
			if err := s.RejectRequest(ctx, all[i].ID, "unknown device", "cli:root", at, pki.AuditEvent{Type: pki.EventRequestRejected}); err != nil {
				t.Fatal(err)
			}
			all[i].Status, all[i].Reason, all[i].DecidedBy = pki.RequestRejected, "unknown device", "cli:root"
			decidedAt(&all[i], at)
		case 2:
			c := newCert(issuerA, fmt.Sprintf("1e%02x", i), t0.Add(day))
			in := issuance(c)
			in.CompleteRequestID, in.ApprovedBy = all[i].ID, "cli:alice"
			mustRecord(t, s, in)
			all[i].Status, all[i].DecidedBy = pki.RequestIssued, "cli:alice"
			decidedAt(&all[i], in.Now)
			all[i].CertIssuerID, all[i].CertSerialHex = c.IssuerID, c.SerialHex
		}
	}

	filters := []store.RequestFilter{
		{},
		{Status: pki.RequestPending},
		{Status: pki.RequestIssued},
		{Status: pki.RequestRejected},
		{Profile: "vpn"},
		{Profile: "wifi", Status: pki.RequestPending},
		{Profile: "default", Status: pki.RequestRejected, Limit: 2},
		{Profile: "nope"},
		{Limit: 5},
		{Now: now},
		{Now: now, Status: pki.RequestPending},
		{Now: now, Status: pki.RequestExpired},
		{Now: now, Status: pki.RequestExpired, Profile: "wifi"},
		{Now: now, Status: pki.RequestRejected},
		{Now: now, Status: pki.RequestPending, Limit: 3},
	}
	wantExpired := map[string]bool{"q-00": true, "q-03": true, "q-15": true, "q-20": true}
	for _, f := range filters {
		var want []pki.EnrollmentRequest
		expired := 0
		for i := len(all) - 1; i >= 0; i-- {
			r := all[i]
			if !f.Now.IsZero() && wantExpired[r.ID] {
				r.Status = pki.RequestExpired
			}
			if (f.Status == "" || r.Status == f.Status) && (f.Profile == "" || r.Profile == f.Profile) {
				want = append(want, r)
				if r.Status == pki.RequestExpired {
					expired++
				}
			}
		}
		if f.Status == pki.RequestExpired && expired == 0 {
			t.Fatalf("ListRequests(%+v): the test expects no expired request", f)
		}
		if f.Limit > 0 && len(want) > f.Limit {
			want = want[:f.Limit]
		}
		got, _, err := s.ListRequests(ctx, f)
		if err != nil {
			t.Fatalf("ListRequests(%+v): %v", f, err)
		}
		if len(got) != len(want) {
			t.Errorf("ListRequests(%+v): %d requests, want %d", f, len(got), len(want))
			continue
		}
		for i := range got {
			sameRequest(t, fmt.Sprintf("ListRequests(%+v) #%d", f, i), got[i], want[i])
		}
		// Page by page (Cursor: where the last page ended), the same list.
		if f.Limit > 0 {
			continue
		}
		var paged []pki.EnrollmentRequest
		for pf := (store.RequestFilter{Status: f.Status, Profile: f.Profile, Now: f.Now, Limit: 4}); ; {
			page, next, err := s.ListRequests(ctx, pf)
			if err != nil {
				t.Fatalf("ListRequests(%+v): %v", pf, err)
			}
			paged = append(paged, page...)
			if next == "" || len(paged) > len(all) {
				break
			}
			if len(page) != pf.Limit {
				t.Errorf("ListRequests(%+v): %d requests and a next page, want %d", pf, len(page), pf.Limit)
			}
			pf.Cursor = next
		}
		if len(paged) != len(want) {
			t.Errorf("ListRequests(%+v) by pages of 4: %d requests, want %d", f, len(paged), len(want))
			continue
		}
		for i := range paged {
			sameRequest(t, fmt.Sprintf("ListRequests(%+v) by pages, #%d", f, i), paged[i], want[i])
		}
	}
	// Which requests are expired depends on the time: none is without one.
	if got, _, err := s.ListRequests(ctx, store.RequestFilter{Status: pki.RequestExpired}); err == nil {
		t.Errorf("ListRequests(expired, no Now): %d requests, want an error", len(got))
	}
	ch := pki.Challenge{ID: "list-1", Hash: []byte("hash-list-1"), CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	for range 2 {
		if err := s.CreateChallenge(ctx, ch, pki.AuditEvent{Type: pki.EventChallengeCreated}); err != nil {
			t.Fatal(err)
		}
		ch.ID, ch.Hash = "list-2", []byte("hash-list-2")
	}
	_, chCursor, err := s.ListChallenges(ctx, store.ChallengeFilter{Limit: 1})
	if err != nil || chCursor == "" {
		t.Fatalf("ListChallenges(Limit 1): next %q, %v; want a next page", chCursor, err)
	}
	for _, c := range badListCursors(chCursor) {
		if _, _, err := s.ListRequests(ctx, store.RequestFilter{Cursor: c}); !errors.Is(err, store.ErrBadCursor) {
			t.Errorf("ListRequests after cursor %q: %v, want ErrBadCursor", c, err)
		}
	}
}

func testListRequestsLimits(t *testing.T, s store.Store) {
	ctx := context.Background()
	// The first 1000 from several goroutines at once (a store that
	// commits in groups then makes far fewer commits: one by one they
	// cost some 7 s of CPU under the race detector), the newest last.
	create := func(i int) error {
		r := newRequest(fmt.Sprintf("m-%04d", i), "default", fmt.Sprintf("tx-%d", i))
		r.CSR, r.ClientCert, r.SANs = []byte{0x30}, nil, nil
		return s.CreateRequest(ctx, r, nil, pendingEvent(r))
	}
	const writers = 8
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := w; i < 1000; i += writers {
				if err := create(i); err != nil {
					errs <- fmt.Errorf("CreateRequest(m-%04d): %w", i, err)
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
	if err := create(1000); err != nil {
		t.Fatal(err)
	}
	for _, lc := range []struct{ limit, want int }{{0, 100}, {-2, 100}, {1, 1}, {1000, 1000}, {1001, 1000}, {5000, 1000}} {
		got, _, err := s.ListRequests(ctx, store.RequestFilter{Limit: lc.limit})
		if err != nil {
			t.Fatalf("ListRequests(Limit %d): %v", lc.limit, err)
		}
		if len(got) != lc.want {
			t.Errorf("ListRequests(Limit %d): %d requests, want %d", lc.limit, len(got), lc.want)
		}
		if len(got) > 0 && got[0].ID != "m-1000" {
			t.Errorf("ListRequests(Limit %d): first is %s, want the newest m-1000", lc.limit, got[0].ID)
		}
	}
}

func testRejectRequest(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, id := range []string{"j-1", "j-2", "j-issued"} {
		mustCreateRequest(t, s, newRequest(id, "default", "tx-"+id))
	}
	in := issuance(newCert(issuerA, "1f", t0.Add(day)))
	in.CompleteRequestID, in.ApprovedBy = "j-issued", "cli:alice"
	mustRecord(t, s, in)

	at := t0.Add(2 * time.Hour)
	ev := pki.AuditEvent{Type: pki.EventRequestRejected, Actor: "cli:bob", Profile: "default", Outcome: "success", Reason: "not ours"}
	steps := []struct {
		name, id, reason, by string
		at                   time.Time
		want                 error
	}{
		{"pending", "j-1", "not ours", "cli:bob", at, nil},
		{"already rejected", "j-1", "twice", "cli:carol", at.Add(time.Hour), store.ErrConflict},
		{"already issued", "j-issued", "too late", "cli:bob", at, store.ErrConflict},
		{"unknown", "j-unknown", "x", "cli:bob", at, store.ErrNotFound},
		{"zero time", "j-2", "x", "cli:bob", time.Time{}, errAny},
	}
	for _, st := range steps {
		before := countAudit(t, s)
		err := s.RejectRequest(ctx, st.id, st.reason, st.by, st.at, ev)
		wantErrAny(t, "RejectRequest "+st.name, err, st.want)
		after := listAudit(t, s, store.AuditFilter{Limit: 1000})
		switch {
		case st.want == nil && len(after) != before+1:
			t.Errorf("RejectRequest %s: %d new events, want 1", st.name, len(after)-before)
		case st.want == nil:
			want := ev
			want.Time = st.at // zero Time takes the decision's time
			sameEvent(t, "RejectRequest "+st.name+": event", after[0], want)
		case len(after) != before:
			t.Errorf("RejectRequest %s: failed rejection appended %d events", st.name, len(after)-before)
		}
	}

	want := newRequest("j-1", "default", "tx-j-1")
	want.Status, want.Reason, want.DecidedBy = pki.RequestRejected, "not ours", "cli:bob"
	decidedAt(&want, at)
	sameRequest(t, "rejected request (the second rejection must not change it)", getRequest(t, s, "j-1"), want)
	if r := getRequest(t, s, "j-2"); r.Status != pki.RequestPending {
		t.Errorf("j-2 after a refused rejection: %s, want pending", r.Status)
	}
	if r := getRequest(t, s, "j-issued"); r.Status != pki.RequestIssued || r.Reason != "" || r.DecidedBy != "cli:alice" {
		t.Errorf("issued request after a refused rejection: %+v", r)
	}
}

// testCompleteRequest: RecordIssuance with CompleteRequestID issues the
// request in the same transaction, or records nothing.
func testCompleteRequest(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, id := range []string{"p-ok", "p-dup", "p-challenge", "p-issued", "p-rejected"} {
		mustCreateRequest(t, s, newRequest(id, "default", "tx-"+id))
	}
	taken := newCert(issuerA, "20", t0.Add(day))
	mustRecord(t, s, issuance(taken))
	in := issuance(newCert(issuerA, "21", t0.Add(day)))
	in.CompleteRequestID, in.ApprovedBy = "p-issued", "cli:alice"
	mustRecord(t, s, in)
	if err := s.RejectRequest(ctx, "p-rejected", "no", "cli:bob", t0, pki.AuditEvent{Type: pki.EventRequestRejected}); err != nil {
		t.Fatal(err)
	}

	now := t0.Add(3 * time.Hour)
	cases := []struct {
		name      string
		request   string
		serial    string
		challenge []byte
		want      error
		// wantStatus is the request's status afterwards.
		wantStatus pki.RequestStatus
	}{
		{"pending", "p-ok", "30", nil, nil, pki.RequestIssued},
		{"issued before: a second approval", "p-issued", "31", nil, store.ErrConflict, pki.RequestIssued},
		{"the same approval again", "p-ok", "32", nil, store.ErrConflict, pki.RequestIssued},
		{"rejected", "p-rejected", "33", nil, store.ErrConflict, pki.RequestRejected},
		{"unknown", "p-unknown", "34", nil, store.ErrNotFound, ""},
		{"pending, but the serial is taken", "p-dup", "20", nil, store.ErrConflict, pki.RequestPending},
		{"pending, but the challenge is unusable", "p-challenge", "35", []byte("no-such-challenge"), store.ErrChallengeUnusable, pki.RequestPending},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newCert(issuerA, tc.serial, t0.Add(day))
			in := store.Issuance{Certificate: c, Now: now, Events: []pki.AuditEvent{issuedEvent(c),
				{Type: pki.EventRequestApproved, Actor: "cli:carol", TransactionID: "tx-" + tc.request}},
				CompleteRequestID: tc.request, ApprovedBy: "cli:carol", ConsumeChallengeHash: tc.challenge}
			var before pki.EnrollmentRequest
			if tc.wantStatus != "" {
				before = getRequest(t, s, tc.request)
			}
			nEvents := countAudit(t, s)
			err := s.RecordIssuance(ctx, in)
			wantErr(t, "RecordIssuance", err, tc.want)

			got, cerr := s.Certificate(ctx, issuerA, tc.serial)
			if tc.want != nil {
				if tc.serial == taken.SerialHex {
					if cerr != nil || got.Subject != taken.Subject {
						t.Errorf("the certificate holding the serial changed: %+v, %v", got, cerr)
					}
				} else {
					wantErr(t, "certificate of a rolled-back issuance", cerr, store.ErrNotFound)
				}
				if n := countAudit(t, s); n != nEvents {
					t.Errorf("rolled-back issuance appended %d events", n-nEvents)
				}
				if tc.wantStatus != "" {
					sameRequest(t, "request after a rolled-back issuance", getRequest(t, s, tc.request), before)
				}
				return
			}
			if cerr != nil {
				t.Errorf("Certificate: %v", cerr)
			}
			if n := countAudit(t, s); n != nEvents+2 {
				t.Errorf("%d new events, want 2", n-nEvents)
			}
			want := before
			want.Status, want.DecidedBy = pki.RequestIssued, "cli:carol"
			decidedAt(&want, now)
			want.CertIssuerID, want.CertSerialHex = c.IssuerID, c.SerialHex
			sameRequest(t, "issued request", getRequest(t, s, tc.request), want)
		})
	}
}

// testConcurrentApproval: operators (or nodes) approving one request at
// once record exactly one certificate.
func testConcurrentApproval(t *testing.T, s store.Store) {
	ctx := context.Background()
	r := newRequest("once", "default", "tx-once")
	mustCreateRequest(t, s, r)
	const approvers = 8
	errs := start(approvers, func(i int) error {
		c := newCert(issuerA, fmt.Sprintf("a0%02x", i), t0.Add(day))
		in := issuance(c, issuedEvent(c))
		in.CompleteRequestID, in.ApprovedBy = r.ID, fmt.Sprintf("cli:op%d", i)
		return s.RecordIssuance(ctx, in)
	})
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("goroutines %d and %d both approved", winner, i)
		case err == nil:
			winner = i
		case !isConflict(err):
			t.Errorf("goroutine %d: %v, want nil or ErrConflict", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no approval succeeded")
	}
	if got := walk(t, s, store.CertFilter{}, 100); len(got) != 1 {
		t.Errorf("%d certificates recorded, want 1", len(got))
	}
	if got := listAudit(t, s, store.AuditFilter{Type: pki.EventIssued}); len(got) != 1 {
		t.Errorf("%d issued events recorded, want 1", len(got))
	}
	got := getRequest(t, s, r.ID)
	if got.Status != pki.RequestIssued || got.CertSerialHex != fmt.Sprintf("a0%02x", winner) ||
		got.DecidedBy != fmt.Sprintf("cli:op%d", winner) {
		t.Errorf("request after the approvals: %+v; want issued with the winner's (%d) serial and name", got, winner)
	}
}

// testSupersede: a renewal revokes the certificate it replaces in the
// issuance's transaction, or nothing happens.
func testSupersede(t *testing.T, s store.Store) {
	ctx := context.Background()
	earlier := t0.Add(-time.Hour)
	for _, sn := range []string{"40", "41", "42", "43", "44"} {
		mustRecord(t, s, issuance(newCert(issuerA, sn, t0.Add(30*day))))
	}
	if _, _, err := s.RevokeCertificate(ctx, issuerA, "41", 1, earlier, pki.AuditEvent{Type: pki.EventRevoked}); err != nil {
		t.Fatal(err)
	}
	mustCreateRequest(t, s, newRequest("renew", "default", "tx-renew"))

	now := t0.Add(5 * time.Hour)
	type state struct {
		status pki.CertStatus
		at     time.Time
		reason int
	}
	valid := state{pki.StatusValid, time.Time{}, 0}
	superseded := state{pki.StatusRevoked, now, 4}
	cases := []struct {
		name     string
		serial   string // of the new certificate
		old      store.CertRef
		complete string
		want     error
		// oldAfter is the old certificate's state afterwards.
		oldAfter state
	}{
		{"valid old certificate", "50", store.CertRef{IssuerID: issuerA, SerialHex: "40"}, "", nil, superseded},
		{"already revoked: left as it is", "51", store.CertRef{IssuerID: issuerA, SerialHex: "41"}, "", nil,
			state{pki.StatusRevoked, earlier, 1}},
		{"unknown old certificate", "52", store.CertRef{IssuerID: issuerA, SerialHex: "4f"}, "", store.ErrNotFound, state{}},
		{"old serial under another issuer", "53", store.CertRef{IssuerID: issuerB, SerialHex: "42"}, "", store.ErrNotFound, state{}},
		{"insert fails (serial taken): old stays valid", "44", store.CertRef{IssuerID: issuerA, SerialHex: "42"}, "", store.ErrConflict, valid},
		{"request not pending: old stays valid", "54", store.CertRef{IssuerID: issuerA, SerialHex: "42"}, "no-such-request", store.ErrNotFound, valid},
		{"the certificate itself", "55", store.CertRef{IssuerID: issuerA, SerialHex: "55"}, "", errAny, state{}},
		{"with an approval", "56", store.CertRef{IssuerID: issuerA, SerialHex: "43"}, "renew", nil, superseded},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newCert(issuerA, tc.serial, t0.Add(60*day))
			c.RenewedFrom = tc.old.IssuerID + ":" + tc.old.SerialHex
			old := tc.old
			in := store.Issuance{Certificate: c, Now: now, Supersede: &old, CompleteRequestID: tc.complete,
				ApprovedBy: "cli:alice", Events: []pki.AuditEvent{{Type: pki.EventRenewed, SerialHex: tc.serial}}}
			nEvents := countAudit(t, s)
			existed := func() bool { _, err := s.Certificate(ctx, issuerA, tc.serial); return err == nil }()
			err := s.RecordIssuance(ctx, in)
			wantErrAny(t, "RecordIssuance", err, tc.want)

			if tc.want == nil {
				if _, err := s.Certificate(ctx, issuerA, tc.serial); err != nil {
					t.Errorf("new certificate: %v", err)
				}
				// A revocation is audited in its transaction: the store
				// adds the superseded certificate's event, only when it
				// revoked it.
				want := 1
				if tc.oldAfter == superseded {
					want = 2
				}
				if n := countAudit(t, s); n != nEvents+want {
					t.Errorf("%d new events, want %d", n-nEvents, want)
				}
				if want == 2 {
					evs, err := s.ListAudit(ctx, store.AuditFilter{Type: pki.EventRevoked, SerialHex: old.SerialHex})
					if err != nil || len(evs) != 1 || evs[0].Actor != "system:renewal" || evs[0].Reason != "superseded" ||
						evs[0].IssuerID != issuerA || !strings.Contains(evs[0].Detail, issuerA+":"+tc.serial) || evs[0].Subject == "" {
						t.Errorf("the superseded certificate's audit events: %+v, %v", evs, err)
					}
				}
			} else {
				if !existed {
					_, err := s.Certificate(ctx, issuerA, tc.serial)
					wantErr(t, "new certificate of a rolled-back issuance", err, store.ErrNotFound)
				}
				if n := countAudit(t, s); n != nEvents {
					t.Errorf("rolled-back issuance appended %d events", n-nEvents)
				}
			}
			if tc.oldAfter.status == "" {
				return
			}
			got, err := s.Certificate(ctx, old.IssuerID, old.SerialHex)
			if err != nil {
				t.Fatalf("old certificate: %v", err)
			}
			gotState := state{got.Status, normTime(got.RevokedAt), got.RevokeReason}
			wantState := tc.oldAfter
			wantState.at = normTime(wantState.at)
			if gotState != wantState {
				t.Errorf("old certificate: %+v, want %+v", gotState, wantState)
			}
		})
	}
	if r := getRequest(t, s, "renew"); r.Status != pki.RequestIssued || r.CertSerialHex != "56" {
		t.Errorf("request completed with a supersede: %+v", r)
	}
}

// testRenews: an issuance that renews a certificate reads it in its own
// transaction: revoked (also by a renewal that superseded it) or unknown,
// nothing is recorded; renewals and a revocation of one certificate racing
// each other, with Supersede, leave one renewal at most, and none issued
// after the revocation.
func testRenews(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := t0.Add(5 * time.Hour)
	renewal := func(serial string, old store.CertRef, supersede bool) store.Issuance {
		c := newCert(issuerA, serial, t0.Add(60*day))
		c.RenewedFrom = old.IssuerID + ":" + old.SerialHex
		in := store.Issuance{Certificate: c, Now: now, Renews: &old, Events: []pki.AuditEvent{{Type: pki.EventRenewed, SerialHex: serial}}}
		if supersede {
			in.Supersede = &old
		}
		return in
	}
	mustRecord(t, s, issuance(newCert(issuerA, "60", t0.Add(30*day))))
	mustRecord(t, s, issuance(newCert(issuerA, "61", t0.Add(30*day))))
	if _, _, err := s.RevokeCertificate(ctx, issuerA, "61", 1, now, pki.AuditEvent{Type: pki.EventRevoked}); err != nil {
		t.Fatal(err)
	}
	// Without Supersede a valid certificate may be renewed more than once.
	for _, sn := range []string{"70", "71"} {
		wantErr(t, "renewal "+sn+" of a valid certificate", s.RecordIssuance(ctx, renewal(sn, store.CertRef{IssuerID: issuerA, SerialHex: "60"}, false)), nil)
	}
	for _, supersede := range []bool{false, true} {
		sn := map[bool]string{false: "72", true: "73"}[supersede]
		err := s.RecordIssuance(ctx, renewal(sn, store.CertRef{IssuerID: issuerA, SerialHex: "61"}, supersede))
		wantErr(t, "renewal of a revoked certificate", err, store.ErrRenewsRevoked)
		if _, err := s.Certificate(ctx, issuerA, sn); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("the refused renewal %s was recorded: %v", sn, err)
		}
	}
	wantErr(t, "renewal of an unknown certificate", s.RecordIssuance(ctx, renewal("74", store.CertRef{IssuerID: issuerA, SerialHex: "6f"}, false)), store.ErrNotFound)

	// Races: for each old certificate, three renewals that supersede and
	// one revocation at once.
	for round := range 6 {
		old := fmt.Sprintf("8%x", round)
		mustRecord(t, s, issuance(newCert(issuerA, old, t0.Add(30*day))))
		ref := store.CertRef{IssuerID: issuerA, SerialHex: old}
		var wg sync.WaitGroup
		errs := make([]error, 3)
		for i := range errs {
			wg.Go(func() { errs[i] = s.RecordIssuance(ctx, renewal(fmt.Sprintf("9%x%x", round, i), ref, true)) })
		}
		var revokedAt time.Time
		wg.Go(func() {
			if _, _, err := s.RevokeCertificate(ctx, issuerA, old, 1, now,
				pki.AuditEvent{Type: pki.EventRevoked, IssuerID: issuerA, SerialHex: old}); err != nil {
				t.Errorf("revoke %s: %v", old, err)
			}
			revokedAt = now
		})
		wg.Wait()
		won := 0
		for i, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, store.ErrRenewsRevoked):
				t.Errorf("round %d renewal %d: %v, want nil or ErrRenewsRevoked", round, i, err)
			}
		}
		if won > 1 {
			t.Errorf("round %d: %d renewals of one certificate recorded, each superseding it", round, won)
		}
		got, err := s.Certificate(ctx, issuerA, old)
		if err != nil || got.Status != pki.StatusRevoked || revokedAt.IsZero() {
			t.Fatalf("round %d: the old certificate %+v, %v", round, got, err)
		}
		// A renewal recorded means it came first: then the old
		// certificate was superseded (reason 4) and the revocation raised
		// that to keyCompromise; otherwise the revocation came first.
		if got.RevokeReason != store.ReasonKeyCompromise {
			t.Errorf("round %d: %d renewals recorded and the old certificate revoked with reason %d, want 1", round, won, got.RevokeReason)
		}
		wantDetail := map[bool]string{true: store.ReasonRaisedDetail(4), false: ""}[won == 1]
		if evs := listAudit(t, s, store.AuditFilter{Type: pki.EventRevoked, SerialHex: old}); len(evs) == 0 || evs[0].Detail != wantDetail {
			t.Errorf("round %d: %d renewals recorded and the revocations %+v, want the last to say %q", round, won, evs, wantDetail)
		}
	}
}

// testPurgeRequests: PurgeExpired removes requests at the end of their
// retention, whatever their status, and nothing else of theirs.
func testPurgeRequests(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := t0.Add(10 * day)
	mk := func(id string, expires time.Time) pki.EnrollmentRequest {
		r := newRequest(id, "default", "tx-"+id)
		r.ExpiresAt = expires
		mustCreateRequest(t, s, r)
		return r
	}
	reqs := []struct {
		id      string
		expires time.Time
		decide  string // "", "reject", "issue"
		purged  bool
	}{
		{"pending-expired", now.Add(-time.Hour), "", true},
		{"pending-at-expiry", now, "", true},
		{"pending-live", now.Add(time.Microsecond), "", false},
		{"rejected-expired", now.Add(-day), "reject", true},
		{"rejected-live", now.Add(day), "reject", false},
		{"issued-expired", now.Add(-day), "issue", true},
		{"issued-live", now.Add(day), "issue", false},
	}
	for i, r := range reqs {
		mk(r.id, r.expires)
		switch r.decide {
		case "reject":
			if err := s.RejectRequest(ctx, r.id, "no", "cli:root", t0, pki.AuditEvent{Type: pki.EventRequestRejected}); err != nil {
				t.Fatal(err)
			}
		case "issue":
			in := issuance(newCert(issuerA, fmt.Sprintf("60%02x", i), t0.Add(100*day)))
			in.CompleteRequestID = r.id
			mustRecord(t, s, in)
		}
	}
	nEvents := countAudit(t, s)
	if err := s.PurgeExpired(ctx, now); err != nil {
		t.Fatalf("PurgeExpired: %v", err)
	}
	for i, r := range reqs {
		_, err := s.Request(ctx, r.id)
		_, terr := s.RequestByTransaction(ctx, "default", "tx-"+r.id, store.RequestKeys{})
		if r.purged {
			wantErr(t, "Request "+r.id, err, store.ErrNotFound)
			wantErr(t, "RequestByTransaction "+r.id, terr, store.ErrNotFound)
		} else {
			wantErr(t, "Request "+r.id, err, nil)
			wantErr(t, "RequestByTransaction "+r.id, terr, nil)
		}
		if r.decide == "issue" {
			if _, err := s.Certificate(ctx, issuerA, fmt.Sprintf("60%02x", i)); err != nil {
				t.Errorf("certificate of purged request %s: %v", r.id, err)
			}
		}
	}
	// The requests purged still pending expired without a decision: each
	// gets its event, the decided ones none.
	expired := map[string]time.Time{"pending-expired": now.Add(-time.Hour), "pending-at-expiry": now}
	if n := countAudit(t, s); n != nEvents+len(expired) {
		t.Errorf("PurgeExpired added %d audit events, want %d (one per request expired undecided)", n-nEvents, len(expired))
	}
	checkExpiredEvents(t, s, expired, now)
	if err := s.PurgeExpired(ctx, now); err != nil { // nothing left to record
		t.Fatalf("PurgeExpired again: %v", err)
	}
	checkExpiredEvents(t, s, expired, now)
	got, _, err := s.ListRequests(ctx, store.RequestFilter{})
	if err != nil || len(got) != 3 {
		t.Errorf("ListRequests after purge: %d requests, %v; want 3", len(got), err)
	}
	// A purged pending request no longer blocks its transaction.
	mk("after-purge", now.Add(day))
	r := newRequest("again", "default", "tx-pending-expired")
	r.ExpiresAt = now.Add(day)
	if err := s.CreateRequest(ctx, r, nil, pendingEvent(r)); err != nil {
		t.Errorf("CreateRequest for the transaction of a purged pending request: %v", err)
	}
}

// checkExpiredEvents: the trail holds one request.expired event for each
// request of expired (its ID and when it expired, held at t0 by
// newRequest), written by the purge at purgedAt, and no other.
func checkExpiredEvents(t *testing.T, s store.Store, expired map[string]time.Time, purgedAt time.Time) {
	t.Helper()
	evs := listAudit(t, s, store.AuditFilter{Type: pki.EventRequestExpired, Limit: 1000})
	seen := map[string]int{}
	for _, ev := range evs {
		id, _, _ := strings.Cut(strings.TrimPrefix(ev.Detail, "request "), " ")
		seen[id]++
		at, ok := expired[id]
		if !ok {
			t.Errorf("request.expired event for %q (%q), which did not expire undecided", id, ev.Detail)
			continue
		}
		r := newRequest(id, "default", "tx-"+id)
		want := fmt.Sprintf("request %s expired at %s without a decision (it was kept %s for an approval); its record was purged",
			id, at.UTC().Format(time.RFC3339), at.Sub(t0))
		if ev.Actor != "system" || ev.Profile != r.Profile || ev.Subject != r.Subject || ev.TransactionID != r.TransactionID ||
			ev.Outcome != "success" || !ev.Time.Equal(normTime(purgedAt)) || ev.Detail != want {
			t.Errorf("request.expired event %+v; want by system at %s, naming the profile, subject and transaction, detail %q", ev, purgedAt, want)
		}
	}
	for id := range expired {
		if seen[id] != 1 {
			t.Errorf("%d request.expired events for %s, want 1", seen[id], id)
		}
	}
}

// testConcurrentPurge: purges run at once (PostgreSQL: as several nodes
// do, each on a connection of its own) remove each request once and record
// each request that expired undecided once; a request decided before
// its retention ended gets no such event.
func testConcurrentPurge(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := t0.Add(10 * day)
	expired := map[string]time.Time{}
	for i := range 24 {
		id := fmt.Sprintf("exp-%02d", i)
		r := newRequest(id, "default", "tx-"+id)
		r.ExpiresAt = now.Add(-time.Duration(i+1) * time.Minute)
		mustCreateRequest(t, s, r)
		switch i % 4 {
		case 1:
			if err := s.RejectRequest(ctx, id, "no", "cli:root", t0, pki.AuditEvent{Type: pki.EventRequestRejected}); err != nil {
				t.Fatal(err)
			}
		case 2:
			in := issuance(newCert(issuerA, fmt.Sprintf("65%02x", i), t0.Add(100*day)))
			in.CompleteRequestID = id
			mustRecord(t, s, in)
		default:
			expired[id] = r.ExpiresAt
		}
	}
	errs := start(8, func(int) error { return s.PurgeExpired(ctx, now) })
	for i, err := range errs {
		if err != nil {
			t.Errorf("purge %d: %v", i, err)
		}
	}
	checkExpiredEvents(t, s, expired, now)
	if left, _, err := s.ListRequests(ctx, store.RequestFilter{}); err != nil || len(left) != 0 {
		t.Errorf("%d requests left after the purges, %v; want none", len(left), err)
	}
}

// testDecidedRequestRetention: a decided request's retention counts from
// its decision. Approved or rejected a minute before its retention from
// when it was held ends, it reads back expiring the retention after the
// decision, is kept by the purge a day after the first end (a pending
// one held with it is purged), and is purged at the end of its retention
// from the decision. One decided at a time before it was held (a node
// whose clock is behind) keeps its retention from when it was held.
func testDecidedRequestRetention(t *testing.T, s store.Store) {
	ctx := context.Background()
	const retention = 7 * day
	late := t0.Add(retention - time.Minute)
	reqs := []struct {
		id         string
		decide     string // "", "reject", "issue"
		at         time.Time
		wantExpiry time.Time
	}{
		{"pending", "", time.Time{}, t0.Add(retention)},
		{"approved-late", "issue", late, late.Add(retention)},
		{"rejected-late", "reject", late, late.Add(retention)},
		{"rejected-before-held", "reject", t0.Add(-time.Hour), t0.Add(retention)},
	}
	for i, r := range reqs {
		req := newRequest(r.id, "default", "tx-"+r.id)
		req.ExpiresAt = t0.Add(retention)
		mustCreateRequest(t, s, req)
		switch r.decide {
		case "reject":
			if err := s.RejectRequest(ctx, r.id, "no", "cli:root", r.at, pki.AuditEvent{Type: pki.EventRequestRejected}); err != nil {
				t.Fatal(err)
			}
		case "issue":
			in := issuance(newCert(issuerA, fmt.Sprintf("70%02x", i), t0.Add(100*day)))
			in.Now, in.CompleteRequestID, in.ApprovedBy = r.at, r.id, "cli:root"
			mustRecord(t, s, in)
		}
		got := getRequest(t, s, r.id)
		if !got.ExpiresAt.Equal(r.wantExpiry) {
			t.Errorf("%s: ExpiresAt %s, want %s", r.id, got.ExpiresAt, r.wantExpiry)
		}
		byTx, err := s.RequestByTransaction(ctx, "default", "tx-"+r.id, store.RequestKeys{})
		if err != nil || !byTx.ExpiresAt.Equal(r.wantExpiry) {
			t.Errorf("%s by transaction: %+v, %v; want it expiring at %s", r.id, byTx, err, r.wantExpiry)
		}
		listed, _, err := s.ListRequests(ctx, store.RequestFilter{Profile: "default", Limit: 1})
		if err != nil || len(listed) != 1 || listed[0].ID != r.id || !listed[0].ExpiresAt.Equal(r.wantExpiry) {
			t.Errorf("%s listed: %+v, %v; want it expiring at %s", r.id, listed, err, r.wantExpiry)
		}
	}
	for _, p := range []struct {
		at   time.Time
		kept []string
	}{
		{t0.Add(retention + day), []string{"approved-late", "rejected-late"}},
		{late.Add(retention - time.Microsecond), []string{"approved-late", "rejected-late"}},
		{late.Add(retention), nil},
	} {
		if err := s.PurgeExpired(ctx, p.at); err != nil {
			t.Fatalf("PurgeExpired: %v", err)
		}
		for _, r := range reqs {
			_, err := s.Request(ctx, r.id)
			if slices.Contains(p.kept, r.id) {
				wantErr(t, fmt.Sprintf("Request %s after the purge at %s", r.id, p.at), err, nil)
			} else {
				wantErr(t, fmt.Sprintf("Request %s after the purge at %s", r.id, p.at), err, store.ErrNotFound)
			}
		}
	}
}

// A held request consumes the one-time challenge that authenticated it, in
// the same transaction: 16 concurrent requests with one challenge store one.
func testCreateRequestConsumesChallenge(t *testing.T, s store.Store) {
	ctx := context.Background()
	ch := pki.Challenge{ID: "held-once", Hash: []byte("hash-held-once"), CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	if err := s.CreateChallenge(ctx, ch, pki.AuditEvent{Type: pki.EventChallengeCreated}); err != nil {
		t.Fatalf("CreateChallenge: %v", err)
	}
	errs := start(16, func(i int) error {
		r := newRequest(fmt.Sprintf("held-%02d", i), "default", fmt.Sprintf("tx-held-%02d", i))
		return s.CreateRequest(ctx, r, ch.Hash, pendingEvent(r))
	})
	exactlyOneWins(t, errs, store.ErrChallengeUnusable, "requests stored with one one-time challenge")
	reqs, _, err := s.ListRequests(ctx, store.RequestFilter{Status: pki.RequestPending})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range reqs {
		if strings.HasPrefix(r.ID, "held-") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d held requests stored, want 1", n)
	}
	// An expired challenge stores nothing.
	late := newRequest("held-late", "default", "tx-held-late")
	late.CreatedAt = t0.Add(2 * time.Hour)
	late.ExpiresAt = late.CreatedAt.Add(time.Hour)
	ch2 := pki.Challenge{ID: "held-exp", Hash: []byte("hash-held-exp"), CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	if err := s.CreateChallenge(ctx, ch2, pki.AuditEvent{Type: pki.EventChallengeCreated}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRequest(ctx, late, ch2.Hash, pendingEvent(late)); !errors.Is(err, store.ErrChallengeUnusable) {
		t.Errorf("expired challenge: %v", err)
	}
	if _, err := s.Request(ctx, "held-late"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a request was stored with an expired challenge: %v", err)
	}
}

// testApprovedRequestNamesItsChallenge: a one-time challenge used up when
// its request was held names the certificate issued on approval, as one
// used up at issuance does, so that ChallengeIssued tells a used-up
// challenge from a guess for approval profiles too.
func testApprovedRequestNamesItsChallenge(t *testing.T, s store.Store) {
	ctx := context.Background()
	ch := pki.Challenge{ID: "held-ch", Hash: []byte("sha256-of-held-ch"), Profile: "default",
		CreatedAt: t0.Add(-time.Hour), ExpiresAt: t0.Add(time.Hour), CreatedBy: "cli:root"}
	if err := s.CreateChallenge(ctx, ch, pki.AuditEvent{Type: pki.EventChallengeCreated}); err != nil {
		t.Fatal(err)
	}
	r := newRequest("p-held-ch", "default", "tx-held-ch")
	r.ChallengeHash = ch.Hash
	if err := s.CreateRequest(ctx, r, ch.Hash, pendingEvent(r)); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ChallengeIssued(ctx, ch.Hash); err != nil || got != "" {
		t.Fatalf("ChallengeIssued while held = %q, %v; want nothing yet", got, err)
	}
	c := newCert(issuerA, "4e1d", t0.Add(day))
	in := issuance(c, issuedEvent(c))
	in.CompleteRequestID, in.ApprovedBy = r.ID, "cli:alice"
	mustRecord(t, s, in)
	if got, err := s.ChallengeIssued(ctx, ch.Hash); err != nil || got != issuerA+":4e1d" {
		t.Errorf("ChallengeIssued after approval = %q, %v; want %s:4e1d", got, err, issuerA)
	}
}
