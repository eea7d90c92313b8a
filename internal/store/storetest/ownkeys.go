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

// testIssuanceOfOwnKey: once a certificate of the server's own (protocol
// internal: an RA that 'ca renew-ra' recorded) is in the inventory, an
// issuance of its key to a client, recorded valid, is refused with an
// *store.OwnKeyError naming that certificate, and records nothing; the
// server's own certificates, imports and records made revoked go through.
// Issuances sent at once (one batch on PostgreSQL) are refused alone.
func testIssuanceOfOwnKey(t *testing.T, s store.Store) {
	ctx := context.Background()
	derRA, _ := keyCert(t)
	ra := newCert(issuerA, "ra1", t0.Add(24*time.Hour))
	ra.DER, ra.Profile, ra.Protocol, ra.Subject, ra.TransactionID = derRA, "scep-ra", pki.ProtocolInternal, "CN=scepter SCEP RA", ""
	mustRecord(t, s, issuance(ra))

	client := func(serial string) pki.Certificate {
		c := newCert(issuerA, serial, t0.Add(time.Hour))
		c.DER = derRA
		return c
	}
	internal := client("o5")
	internal.Profile, internal.Protocol = "tls-server", pki.ProtocolInternal
	imported := client("o6")
	imported.Source, imported.Profile = pki.SourceImported, pki.ProfileImported
	revoked := client("o7")
	revoked.Status, revoked.RevokedAt, revoked.RevokeReason = pki.StatusRevoked, t0, 4
	other := newCert(issuerA, "o8", t0.Add(time.Hour))
	other.DER, _ = keyCert(t)
	est := client("o4")
	est.Protocol = pki.ProtocolEST
	cases := []struct {
		name string
		in   store.Issuance
		want error
	}{
		{"SCEP, with events", issuance(client("o1"), issuedEvent(client("o1"))), store.ErrOwnKey},
		{"SCEP, without events", issuance(client("o2")), store.ErrOwnKey},
		{"EST, with events", issuance(est, issuedEvent(est)), store.ErrOwnKey},
		{"the server's own", issuance(internal, issuedEvent(internal)), nil},
		{"imported", issuance(imported), nil},
		{"recorded revoked", issuance(revoked), nil},
		{"another key", issuance(other, issuedEvent(other)), nil},
	}
	for _, tc := range cases {
		c := tc.in.Certificate
		err := s.RecordIssuance(ctx, tc.in)
		wantErr(t, tc.name, err, tc.want)
		_, gerr := s.Certificate(ctx, c.IssuerID, c.SerialHex)
		if tc.want == nil {
			if gerr != nil {
				t.Errorf("%s: Certificate = %v, want it recorded", tc.name, gerr)
			}
			continue
		}
		if !errors.Is(gerr, store.ErrNotFound) {
			t.Errorf("%s: refused issuance: Certificate = %v, want ErrNotFound", tc.name, gerr)
		}
		var own *store.OwnKeyError
		if !errors.As(err, &own) || own.Profile != "scep-ra" || own.Subject != ra.Subject {
			t.Errorf("%s: error %#v, want an *OwnKeyError naming scep-ra %q", tc.name, own, ra.Subject)
		}
	}

	// Sent at once: the own key's issuance is refused, the others are
	// recorded (a batch that fails is tried again one by one).
	const others = 6
	batch := make([]pki.Certificate, others+1)
	for i := range batch {
		batch[i] = newCert(issuerB, fmt.Sprintf("p%d", i), t0.Add(time.Hour))
		batch[i].DER, _ = keyCert(t)
	}
	batch[others].DER = derRA
	errs := make([]error, len(batch))
	var wg sync.WaitGroup
	for i, c := range batch {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.RecordIssuance(ctx, issuance(c, issuedEvent(c)))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		want := error(nil)
		if i == others {
			want = store.ErrOwnKey
		}
		wantErr(t, fmt.Sprintf("issuance %d of a batch", i), err, want)
	}
}
