package estserver_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/est"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// renewalBarrier holds each renewal's RecordIssuance, once armed, until
// want of them have arrived: every racer has passed the check that its
// certificate is valid before any renewal revokes it.
type renewalBarrier struct {
	store.Store
	armed   atomic.Bool
	want    int32
	arrived atomic.Int32
	all     chan struct{}
}

func (b *renewalBarrier) RecordIssuance(ctx context.Context, in store.Issuance) error {
	if b.armed.Load() && in.Renews != nil {
		if b.arrived.Add(1) == b.want {
			close(b.all)
		}
		select {
		case <-b.all:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return b.Store.RecordIssuance(ctx, in)
}

// r126 D5: renewals of one certificate with different new keys, racing at
// a revoke_superseded profile: one is issued, and each other is refused
// with what the same request a moment later gets, the certificate's
// serial, when and why it was revoked, and that the device must enroll
// anew; they got the bare "the certificate to renew is revoked".
func TestSupersededRenewalRaceLosersAreToldWhy(t *testing.T) {
	const racers = 6
	barrier := &renewalBarrier{want: racers, all: make(chan struct{})}
	renew := profile("renew", func(p *pki.Profile) { p.RenewalWindow, p.RevokeSuperseded = 1, true })
	f := newFixture(t, fixtureOptions{profiles: []pki.Profile{renew}, wrapStore: func(st store.Store) store.Store {
		barrier.Store = st
		return barrier
	}})
	names := csr.Template{DNSNames: []string{"race.example"}}
	key := newKey(t)
	old := f.issued(f.post(f.httpClient(nil, 0), "renew/simpleenroll", "alice", userPassword, newCSR(t, key, "race", names), nil))
	tc := f.httpClient(tlsPair(old, key, f.auth.Issuer.Cert), 0)
	barrier.armed.Store(true)

	statuses, answers, errs := make([]int, racers), make([]string, racers), make([]error, racers)
	gate := make(chan struct{})
	var wg sync.WaitGroup
	for i := range racers {
		body := newCSR(t, newKey(t), "race", names)
		wg.Go(func() {
			<-gate
			statuses[i], answers[i], errs[i] = reenroll(tc, f.url+est.PathPrefix+"renew/simplereenroll", body)
		})
	}
	close(gate)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("the racing renewals did not end within 60 s")
	}

	rec := f.record(old)
	renewals, err := f.st.RenewalsOf(context.Background(), rec.IssuerID, rec.SerialHex)
	if err != nil {
		t.Fatal(err)
	}
	if len(renewals) != 1 || rec.Status != pki.StatusRevoked || rec.RevokeReason != pki.ReasonSuperseded {
		t.Fatalf("%d renewals, the old certificate %s (reason %d); want 1, revoked as superseded", len(renewals), rec.Status, rec.RevokeReason)
	}
	want := "the certificate to renew is revoked: " + pki.ShownSerial(rec.SerialHex) + " was revoked at " + rec.RevokedAt.UTC().Format(time.RFC3339) +
		" (superseded), and a revoked certificate authenticates nothing; enroll anew, authenticated by a challenge"
	won := 0
	for i := range racers {
		switch {
		case errs[i] != nil:
			t.Errorf("racer %d: %v", i, errs[i])
		case statuses[i] == http.StatusOK:
			won++
		case statuses[i] != http.StatusUnauthorized || strings.TrimSpace(answers[i]) != want:
			t.Errorf("racer %d: HTTP %d %q, want 401 %q", i, statuses[i], answers[i], want)
		}
	}
	if won != 1 {
		t.Errorf("%d racers got a certificate, want 1", won)
	}
	// A moment later, the same words.
	late := f.post(tc, "renew/simplereenroll", "", "", newCSR(t, newKey(t), "race", names), nil)
	wantStatus(t, late, http.StatusUnauthorized, want)
}
