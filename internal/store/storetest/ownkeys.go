package storetest

import (
	"context"
	"crypto/ecdsa"
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

// testIssuanceOfIssuingCAKey: the key of every issuing CA the store
// records (a first one, a current one, a next one that 'ca rollover'
// published) is refused to a client like an RA's, from the moment it is
// recorded, with an *store.OwnKeyError naming the CA's ID and subject,
// and nothing is recorded; the server's own certificates, imports and
// records made revoked go through, and so do other keys. A generation
// whose DER holds no key refuses nothing. Issuances sent at once (one
// batch on PostgreSQL) are refused alone.
func testIssuanceOfIssuingCAKey(t *testing.T, s store.Store) {
	ctx := context.Background()
	type generation struct {
		g   store.CAGeneration
		der []byte
	}
	var gens []generation
	for i, switchAt := range []time.Time{{}, t0.Add(-24 * time.Hour), t0.Add(24 * time.Hour)} {
		der, _ := keyCert(t)
		g := caGen(fmt.Sprintf("ca%d", i), "sha256:r", switchAt)
		g.IssuerDER = der
		if _, err := s.PublishCAGeneration(ctx, g, caEvent(pki.EventCAPublished, g.IssuerID)); err != nil {
			t.Fatalf("publish %s: %v", g.IssuerID, err)
		}
		gens = append(gens, generation{g, der})
	}
	// A generation recorded with a DER that holds no key (as other tests
	// record them) is no key of anyone's.
	if _, err := s.PublishCAGeneration(ctx, caGen("nokey", "sha256:r", t0.Add(48*time.Hour)), caEvent(pki.EventCAPublished, "nokey")); err != nil {
		t.Fatal(err)
	}

	for i, gen := range gens {
		client := func(serial string) pki.Certificate {
			c := newCert(issuerA, fmt.Sprintf("g%d%s", i, serial), t0.Add(time.Hour))
			c.DER = gen.der
			return c
		}
		est := client("est")
		est.Protocol = pki.ProtocolEST
		internal := client("internal")
		internal.Profile, internal.Protocol = "tls-server", pki.ProtocolInternal
		imported := client("imported")
		imported.Source, imported.Profile = pki.SourceImported, pki.ProfileImported
		revoked := client("revoked")
		revoked.Status, revoked.RevokedAt, revoked.RevokeReason = pki.StatusRevoked, t0, 4
		cases := []struct {
			name string
			in   store.Issuance
			want error
		}{
			{"SCEP, with events", issuance(client("scep"), issuedEvent(client("scep"))), store.ErrOwnKey},
			{"SCEP, without events", issuance(client("bare")), store.ErrOwnKey},
			{"EST, with events", issuance(est, issuedEvent(est)), store.ErrOwnKey},
			{"the server's own", issuance(internal, issuedEvent(internal)), nil},
			{"imported", issuance(imported), nil},
			{"recorded revoked", issuance(revoked), nil},
		}
		for _, tc := range cases {
			what := gen.g.IssuerID + ": " + tc.name
			c := tc.in.Certificate
			err := s.RecordIssuance(ctx, tc.in)
			wantErr(t, what, err, tc.want)
			_, gerr := s.Certificate(ctx, c.IssuerID, c.SerialHex)
			if tc.want == nil {
				if gerr != nil {
					t.Errorf("%s: Certificate = %v, want it recorded", what, gerr)
				}
				continue
			}
			if !errors.Is(gerr, store.ErrNotFound) {
				t.Errorf("%s: refused issuance: Certificate = %v, want ErrNotFound", what, gerr)
			}
			var own *store.OwnKeyError
			if !errors.As(err, &own) || own.IssuerID != gen.g.IssuerID || own.Subject != "CN=kcdev" || own.Profile != "" {
				t.Errorf("%s: error %#v, want an *OwnKeyError naming issuing CA %s (CN=kcdev)", what, own, gen.g.IssuerID)
			}
		}
	}

	// Sent at once: the issuance of the key of a next CA recorded now
	// (whose key no certificate holds, unlike the above's after "the
	// server's own") is refused, the others are recorded.
	derNext, _ := keyCert(t)
	later := caGen("ca-later", "sha256:r", t0.Add(72*time.Hour))
	later.IssuerDER = derNext
	if _, err := s.PublishCAGeneration(ctx, later, caEvent(pki.EventCAPublished, later.IssuerID)); err != nil {
		t.Fatalf("publish %s: %v", later.IssuerID, err)
	}
	const others = 6
	batch := make([]pki.Certificate, others+1)
	for i := range batch {
		batch[i] = newCert(issuerB, fmt.Sprintf("q%d", i), t0.Add(time.Hour))
		batch[i].DER, _ = keyCert(t)
	}
	batch[others].DER = derNext
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
	var own *store.OwnKeyError
	if !errors.As(errs[others], &own) || own.IssuerID != later.IssuerID {
		t.Errorf("the batch's refusal: %#v, want an *OwnKeyError naming issuing CA %s", own, later.IssuerID)
	}
}

// testRequestOfOwnKey: a request to hold for approval whose key is that
// of one of the server's own certificates (an RA's), of an issuing CA the
// store records (a next one of 'ca rollover'), or a key revoked as
// compromised, is refused as RecordIssuance would refuse its approval:
// an *store.OwnKeyError naming the certificate or CA, or
// store.ErrKeyCompromised. Nothing is held, and the one-time challenge it
// came with stays usable. Another key's request is held.
func testRequestOfOwnKey(t *testing.T, s store.Store) {
	ctx := context.Background()
	raKey, caKey, compromisedKey, otherKey := newKey(t), newKey(t), newKey(t), newKey(t)
	ra := newCert(issuerA, "ra1", t0.Add(24*time.Hour))
	ra.DER, ra.Profile, ra.Protocol, ra.Subject, ra.TransactionID = certOf(t, raKey), "scep-ra", pki.ProtocolInternal, "CN=scepter SCEP RA", ""
	mustRecord(t, s, issuance(ra))
	next := caGen("ca-next", "sha256:r", t0.Add(24*time.Hour))
	next.IssuerDER = certOf(t, caKey)
	if _, err := s.PublishCAGeneration(ctx, next, caEvent(pki.EventCAPublished, next.IssuerID)); err != nil {
		t.Fatalf("publish %s: %v", next.IssuerID, err)
	}
	leaked := newCert(issuerA, "leaked", t0.Add(24*time.Hour))
	leaked.DER = certOf(t, compromisedKey)
	mustRecord(t, s, issuance(leaked))
	if _, _, err := s.RevokeCertificate(ctx, issuerA, leaked.SerialHex, store.ReasonKeyCompromise, t0, pki.AuditEvent{Type: pki.EventRevoked}); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name     string
		key      *ecdsa.PrivateKey
		protocol pki.Protocol
		want     error
		// What the *store.OwnKeyError of a refusal names.
		wantProfile, wantIssuer, wantSubject string
	}{
		{"the RA's key over SCEP", raKey, pki.ProtocolSCEP, store.ErrOwnKey, "scep-ra", "", ra.Subject},
		{"the RA's key over EST", raKey, pki.ProtocolEST, store.ErrOwnKey, "scep-ra", "", ra.Subject},
		{"the next CA's key over SCEP", caKey, pki.ProtocolSCEP, store.ErrOwnKey, "", next.IssuerID, "CN=device"},
		{"the next CA's key over EST", caKey, pki.ProtocolEST, store.ErrOwnKey, "", next.IssuerID, "CN=device"},
		{"a compromised key", compromisedKey, pki.ProtocolSCEP, store.ErrKeyCompromised, "", "", ""},
		{"another key", otherKey, pki.ProtocolEST, nil, "", "", ""},
	}
	for i, tc := range cases {
		ch := pki.Challenge{ID: fmt.Sprintf("ok-%d", i), Hash: []byte(fmt.Sprintf("hash-ownkey-%d", i)), Profile: "approval",
			CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
		if err := s.CreateChallenge(ctx, ch, pki.AuditEvent{Type: pki.EventChallengeCreated}); err != nil {
			t.Fatal(err)
		}
		r := newRequest(fmt.Sprintf("own-%d", i), "approval", fmt.Sprintf("tx-own-%d", i))
		r.CSR, r.ClientCert, r.Protocol = csrOf(t, tc.key), nil, tc.protocol
		err := s.CreateRequest(ctx, r, ch.Hash, pendingEvent(r))
		wantErr(t, tc.name, err, tc.want)
		_, gerr := s.Request(ctx, r.ID)
		_, cerr := s.LookupChallenge(ctx, ch.Hash, t0)
		if tc.want == nil {
			if gerr != nil {
				t.Errorf("%s: Request = %v, want it held", tc.name, gerr)
			}
			continue
		}
		if !errors.Is(gerr, store.ErrNotFound) {
			t.Errorf("%s: refused request: Request = %v, want ErrNotFound", tc.name, gerr)
		}
		if cerr != nil {
			t.Errorf("%s: refused request: its challenge: %v, want it still usable", tc.name, cerr)
		}
		if tc.want != store.ErrOwnKey {
			continue
		}
		var own *store.OwnKeyError
		if !errors.As(err, &own) || own.Profile != tc.wantProfile || own.IssuerID != tc.wantIssuer || own.Subject != tc.wantSubject {
			t.Errorf("%s: error %#v, want an *OwnKeyError of profile %q, issuer %q, subject %q", tc.name, own, tc.wantProfile, tc.wantIssuer, tc.wantSubject)
		}
	}
}
