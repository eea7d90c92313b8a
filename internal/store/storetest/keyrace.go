package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// testIssuanceOfCompromisedKey: once a key is revoked as compromised, an
// issuance of it recorded valid is refused with ErrKeyCompromised and
// records nothing (neither the certificate nor its events); recorded
// revoked (an import), it goes through.
func testIssuanceOfCompromisedKey(t *testing.T, s store.Store) {
	ctx := context.Background()
	der, _ := keyCert(t)
	first := newCert(issuerA, "k0", t0.Add(time.Hour))
	first.DER = der
	mustRecord(t, s, issuance(first))
	if _, _, err := s.RevokeCertificate(ctx, issuerA, "k0", store.ReasonKeyCompromise, t0.Add(time.Minute),
		pki.AuditEvent{Type: pki.EventRevoked}); err != nil {
		t.Fatal(err)
	}
	for _, events := range [][]pki.AuditEvent{nil, {issuedEvent(newCert(issuerA, "k1", t0))}} {
		again := newCert(issuerA, "k1", t0.Add(time.Hour))
		again.DER = der
		err := s.RecordIssuance(ctx, issuance(again, events...))
		wantErr(t, fmt.Sprintf("issuance of the compromised key (%d events)", len(events)), err, store.ErrKeyCompromised)
		if _, err := s.Certificate(ctx, issuerA, "k1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("refused issuance: Certificate = %v, want ErrNotFound", err)
		}
	}
	imported := newCert(issuerA, "k2", t0.Add(time.Hour))
	imported.DER = der
	imported.Status, imported.RevokedAt, imported.RevokeReason = pki.StatusRevoked, t0, store.ReasonKeyCompromise
	mustRecord(t, s, issuance(imported))
}

// testIssuanceRacesKeyCompromise: issuances of one key, from many
// goroutines, while one of its certificates is revoked for keyCompromise.
// Every issuance either lands before the revocation (whose sweep then
// revokes it) or after it (and is refused): none is left valid.
func testIssuanceRacesKeyCompromise(t *testing.T, s store.Store) {
	issuancesRaceKeyCompromise(t, s, false)
}

// testIssuanceRacesReasonRaised: the same, the certificate revoked
// superseded first and its reason raised to keyCompromise during the
// issuances.
func testIssuanceRacesReasonRaised(t *testing.T, s store.Store) {
	issuancesRaceKeyCompromise(t, s, true)
}

func issuancesRaceKeyCompromise(t *testing.T, s store.Store, superseded bool) {
	ctx := context.Background()
	der, _ := keyCert(t)
	const workers, each = 8, 25
	first := newCert(issuerA, "r-first", t0.Add(time.Hour))
	first.DER = der
	mustRecord(t, s, issuance(first))
	if superseded {
		if _, _, err := s.RevokeCertificate(ctx, issuerA, "r-first", 4, t0, pki.AuditEvent{Type: pki.EventRevoked}); err != nil {
			t.Fatal(err)
		}
	}

	var (
		mu       sync.Mutex
		recorded []string
		wg       sync.WaitGroup
	)
	started := make(chan struct{}, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				c := newCert(issuerA, fmt.Sprintf("r%02d%02d", w, i), t0.Add(time.Hour))
				c.DER = der
				err := s.RecordIssuance(ctx, issuance(c, issuedEvent(c)))
				started <- struct{}{}
				switch {
				case err == nil:
					mu.Lock()
					recorded = append(recorded, c.SerialHex)
					mu.Unlock()
				case !errors.Is(err, store.ErrKeyCompromised):
					t.Errorf("RecordIssuance(%s): %v", c.SerialHex, err)
				}
			}
		}()
	}
	// Revoke while the issuances are at full speed.
	for range workers {
		<-started
	}
	if _, _, err := s.RevokeCertificate(ctx, issuerA, "r-first", store.ReasonKeyCompromise, t0.Add(time.Minute),
		pki.AuditEvent{Type: pki.EventRevoked}); err != nil {
		t.Errorf("revoke: %v", err)
	}
	wg.Wait()
	for _, serial := range recorded {
		c, err := s.Certificate(ctx, issuerA, serial)
		if err != nil {
			t.Fatal(err)
		}
		if c.Status != pki.StatusRevoked || c.RevokeReason != store.ReasonKeyCompromise {
			t.Errorf("%s: %s (reason %d), want revoked for keyCompromise with its key", serial, c.Status, c.RevokeReason)
		}
	}
	t.Logf("%d of %d issuances recorded (and revoked)", len(recorded), workers*each)
}
