package crl_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/crl"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest/fixture"
	"github.com/scepter/scepter/internal/store"
)

// The root's CRLs follow one another: each keeps its predecessor's
// entries, numbers grow, and nothing the root did not sign is carried on.
func TestSignRootCRL(t *testing.T) {
	f := fixture.New(t, fixture.Options{})
	root, err := ca.RootIssuer(f.Dir, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	now := f.Clock.Now()
	first, entries, _, err := crl.SignRootCRL(root, nil, nil, now, crl.DefaultRootValidity)
	if err != nil {
		t.Fatal(err)
	}
	list := parseCRL(t, first.DER, root.Cert)
	if first.Number != 1 || list.Number.Int64() != 1 || len(entries) != 0 || first.IssuerID != root.ID {
		t.Errorf("first root CRL: number %d (%d), %d entries, issuer %s", first.Number, list.Number, len(entries), first.IssuerID)
	}
	if !list.ThisUpdate.Before(now) || !list.NextUpdate.Equal(now.UTC().Truncate(time.Second).Add(crl.DefaultRootValidity)) {
		t.Errorf("first root CRL: thisUpdate %s, nextUpdate %s (now %s)", list.ThisUpdate, list.NextUpdate, now)
	}

	// The issuing CA revoked a day later: listed with its reason, and the
	// CRL is not dated before the revocation.
	f.Clock.Advance(24 * time.Hour)
	now = f.Clock.Now()
	issuing := f.Issuer().Cert
	second, entries, listed, err := crl.SignRootCRL(root, first, []crl.RootRevocation{{Cert: issuing, RevokedAt: now, Reason: 2}}, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	list = parseCRL(t, second.DER, root.Cert)
	if second.Number != 2 || len(entries) != 1 || len(list.RevokedCertificateEntries) != 1 ||
		list.RevokedCertificateEntries[0].SerialNumber.Cmp(issuing.SerialNumber) != 0 || list.RevokedCertificateEntries[0].ReasonCode != 2 {
		t.Fatalf("second root CRL: number %d, entries %+v", second.Number, list.RevokedCertificateEntries)
	}
	if len(listed) != 1 || listed[0].Listed || listed[0].ReasonChanged() || listed[0].Entry.Reason != 2 || !listed[0].Entry.RevokedAt.Equal(now) {
		t.Errorf("second root CRL: listings %+v", listed)
	}
	if list.ThisUpdate.Before(now.Truncate(time.Second)) || !list.NextUpdate.Equal(now.UTC().Truncate(time.Second).Add(time.Hour)) {
		t.Errorf("second root CRL: thisUpdate %s, nextUpdate %s (revoked at %s)", list.ThisUpdate, list.NextUpdate, now)
	}

	// Revoked again later: with the same reason the entry stays as it
	// was; with another compromise reason it takes that reason and keeps
	// its date.
	revokedAt := now.UTC().Truncate(time.Second)
	third := second
	for _, step := range []struct {
		reason, prevReason int
		changed            bool
	}{{2, 2, false}, {1, 2, true}, {2, 1, true}, {2, 2, false}} {
		f.Clock.Advance(time.Hour)
		prev := third
		third, entries, listed, err = crl.SignRootCRL(root, prev, []crl.RootRevocation{{Cert: issuing, RevokedAt: f.Clock.Now(), Reason: step.reason}}, f.Clock.Now(), crl.DefaultRootValidity)
		if err != nil {
			t.Fatal(err)
		}
		list = parseCRL(t, third.DER, root.Cert)
		if third.Number != prev.Number+1 || len(entries) != 1 || len(list.RevokedCertificateEntries) != 1 ||
			list.RevokedCertificateEntries[0].ReasonCode != step.reason || !list.RevokedCertificateEntries[0].RevocationTime.Equal(revokedAt) {
			t.Errorf("revoked again with reason %d: number %d, entries %+v", step.reason, third.Number, list.RevokedCertificateEntries)
		}
		if len(listed) != 1 || !listed[0].Listed || listed[0].PrevReason != step.prevReason || listed[0].ReasonChanged() != step.changed ||
			listed[0].Entry.Reason != step.reason || !listed[0].Entry.RevokedAt.Equal(revokedAt) {
			t.Errorf("revoked again with reason %d: listing %+v", step.reason, listed)
		}
	}
	// A compromise reason is never changed to a milder one: one mistyped
	// --reason would have relying parties trust what the key signed.
	for _, reason := range []int{0, 3, 4, 5} {
		_, _, _, err := crl.SignRootCRL(root, third, []crl.RootRevocation{{Cert: issuing, RevokedAt: f.Clock.Now(), Reason: reason}}, f.Clock.Now(), time.Hour)
		if !errors.Is(err, crl.ErrReasonDowngrade) || !strings.Contains(err.Error(), "listed with reason cACompromise") {
			t.Errorf("cACompromise changed to reason %d: %v", reason, err)
		}
	}
	// Numbered above a mark kept outside the store (one restored from an
	// older copy holds an older CRL), and above the store's newest.
	for _, tc := range []struct{ mark, want int64 }{{third.Number + 40, third.Number + 41}, {1, third.Number + 1}} {
		above, _, _, err := crl.SignRootCRLAbove(root, third, tc.mark, nil, f.Clock.Now(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if above.Number != tc.want || parseCRL(t, above.DER, root.Cert).Number.Int64() != tc.want {
			t.Errorf("above mark %d and stored %d: number %d, want %d", tc.mark, third.Number, above.Number, tc.want)
		}
	}
	if _, _, _, err := crl.SignRootCRLAbove(root, third, crl.MaxNumber, nil, f.Clock.Now(), time.Hour); err == nil {
		t.Error("numbered above the last number")
	}
	// Not after the root's end.
	far, _, _, err := crl.SignRootCRL(root, third, nil, f.Clock.Now(), 100*365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !far.NextUpdate.Equal(root.Cert.NotAfter.UTC().Truncate(time.Second)) {
		t.Errorf("nextUpdate %s, want the root's end %s", far.NextUpdate, root.Cert.NotAfter)
	}

	// A stored CRL another root signed is not carried on.
	other := fixture.New(t, fixture.Options{})
	otherRoot, err := ca.RootIssuer(other.Dir, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	foreign, _, _, err := crl.SignRootCRL(otherRoot, nil, nil, other.Clock.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := crl.SignRootCRL(root, foreign, nil, f.Clock.Now(), time.Hour); err == nil || !strings.Contains(err.Error(), "not signed by this root") {
		t.Errorf("a predecessor of another root: %v", err)
	}
	// None once the root has expired, none that would reach relying
	// parties expired.
	if _, _, _, err := crl.SignRootCRL(root, third, nil, root.Cert.NotAfter.Add(time.Second), time.Hour); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("after the root's end: %v", err)
	}
	for _, v := range []time.Duration{0, -time.Hour, time.Second, crl.MinRootValidity - time.Second} {
		if _, _, _, err := crl.SignRootCRL(root, third, nil, f.Clock.Now(), v); err == nil {
			t.Errorf("a validity of %s was taken", v)
		}
	}
}

// ApplyRootCRL gives the authority the issuing CAs the root's stored CRL
// lists: none while none is stored, the listed one once it is, and no
// change for a CRL another root signed.
func TestApplyRootCRL(t *testing.T) {
	f := fixture.New(t, fixture.Options{})
	ctx := context.Background()
	first := f.Issuer()
	switchAt := f.Clock.Now().Add(time.Hour)
	if _, _, err := ca.Rollover(f.Dir, ca.RolloverOptions{SwitchAt: switchAt}, f.Clock); err != nil {
		t.Fatal(err)
	}
	f.Clock.Set(switchAt.Add(time.Minute))
	if err := f.Authority.Reload(f.Clock.Now()); err != nil {
		t.Fatal(err)
	}
	if added, err := crl.ApplyRootCRL(ctx, f.Store, f.Authority); err != nil || len(added) != 0 || len(f.Authority.RevokedIssuers()) != 0 {
		t.Fatalf("no root CRL stored: added %v, %v; revoked %v", added, err, f.Authority.RevokedIssuers())
	}

	root, err := ca.RootIssuer(f.Dir, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	signed, _, _, err := crl.SignRootCRL(root, nil, []crl.RootRevocation{{Cert: first.Cert, RevokedAt: f.Clock.Now(), Reason: 2}}, f.Clock.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Store.PutCRL(ctx, *signed, 10); err != nil {
		t.Fatal(err)
	}
	for _, want := range [][]string{{first.ID}, nil} { // added once, then nothing new
		added, err := crl.ApplyRootCRL(ctx, f.Store, f.Authority)
		if err != nil || !slices.Equal(added, want) || !slices.Equal(f.Authority.RevokedIssuers(), []string{first.ID}) {
			t.Fatalf("root CRL listing the first CA: added %v (want %v), %v; revoked %v", added, want, err, f.Authority.RevokedIssuers())
		}
	}

	// A CRL that is not the root's changes nothing.
	other := fixture.New(t, fixture.Options{})
	otherRoot, err := ca.RootIssuer(other.Dir, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	foreign, _, _, err := crl.SignRootCRL(otherRoot, nil, nil, f.Clock.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := crl.RootRevokedIssuers(foreign.DER, f.Authority.Root, f.Authority.Issuers()); err == nil {
		t.Error("a CRL another root signed was read as ours")
	}
}

// ApplyRootCRL records with each listed issuing CA the reason of its
// entry on the root CRL, and a later CRL that changes the reason (a
// retired CA found compromised) replaces it at the next reload: the OCSP
// responder answers the CA's certificates with a reason that follows it.
// Before, only the IDs were recorded, and every CA read as compromised.
func TestApplyRootCRLReasons(t *testing.T) {
	f := fixture.New(t, fixture.Options{})
	ctx := context.Background()
	first := f.Issuer()
	switchAt := f.Clock.Now().Add(time.Hour)
	if _, _, err := ca.Rollover(f.Dir, ca.RolloverOptions{SwitchAt: switchAt}, f.Clock); err != nil {
		t.Fatal(err)
	}
	f.Clock.Set(switchAt.Add(time.Minute))
	if err := f.Authority.Reload(f.Clock.Now()); err != nil {
		t.Fatal(err)
	}
	if reason, listed := f.Authority.RevokedIssuerReason(first.ID); listed {
		t.Fatalf("no root CRL applied: the first CA is listed with reason %d", reason)
	}
	root, err := ca.RootIssuer(f.Dir, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var prev *store.CRL
	// In the order a root CRL may change them: a compromise reason is
	// never changed to a milder one.
	for _, reason := range []int{pki.ReasonCessationOfOperation, pki.ReasonSuperseded, pki.ReasonUnspecified, pki.ReasonCACompromise, pki.ReasonKeyCompromise} {
		name, _ := pki.ReasonName(reason)
		f.Clock.Advance(time.Minute)
		signed, _, _, err := crl.SignRootCRL(root, prev, []crl.RootRevocation{{Cert: first.Cert, RevokedAt: f.Clock.Now(), Reason: reason}}, f.Clock.Now(), time.Hour)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := f.Store.PutCRL(ctx, *signed, 10); err != nil {
			t.Fatal(err)
		}
		prev = signed
		reasons, err := crl.RootRevokedIssuerReasons(signed.DER, f.Authority.Root, f.Authority.Issuers())
		if err != nil || !maps.Equal(reasons, map[string]int{first.ID: reason}) {
			t.Errorf("%s: RootRevokedIssuerReasons = %v, %v; want %s: %d", name, reasons, err, first.ID, reason)
		}
		if _, err := crl.ApplyRootCRL(ctx, f.Store, f.Authority); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got, listed := f.Authority.RevokedIssuerReason(first.ID); !listed || got != reason {
			t.Errorf("%s: after ApplyRootCRL the first CA is recorded with reason %d (listed %v), want %d", name, got, listed, reason)
		}
		if !slices.Equal(f.Authority.RevokedIssuers(), []string{first.ID}) {
			t.Errorf("%s: revoked %v, want only %s", name, f.Authority.RevokedIssuers(), first.ID)
		}
	}
}

// A listing OCSP answers as a CA compromise (unspecified and aACompromise
// too, pki.CAListingIsCompromise) is not changed to a reason OCSP answers
// as a retirement: what relying parties were told is not taken back (r79).
// Within the compromise reasons it may change; keyCompromise and
// cACompromise only to each other, as before.
func TestRootCRLListingAnsweredAsCompromiseKeepsIt(t *testing.T) {
	f := fixture.New(t, fixture.Options{})
	root, err := ca.RootIssuer(f.Dir, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	issuing := f.Issuer().Cert
	listWith := func(t *testing.T, reason int) *store.CRL {
		t.Helper()
		c, _, _, err := crl.SignRootCRL(root, nil, []crl.RootRevocation{{Cert: issuing, RevokedAt: f.Clock.Now(), Reason: reason}}, f.Clock.Now(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, tc := range []struct {
		from, to int
		refused  bool
	}{
		{pki.ReasonUnspecified, pki.ReasonSuperseded, true},
		{pki.ReasonUnspecified, pki.ReasonCessationOfOperation, true},
		{pki.ReasonAACompromise, pki.ReasonCessationOfOperation, true},
		{pki.ReasonUnspecified, pki.ReasonKeyCompromise, false},
		{pki.ReasonUnspecified, pki.ReasonAACompromise, false},
		{pki.ReasonCACompromise, pki.ReasonUnspecified, true},
		{pki.ReasonSuperseded, pki.ReasonCessationOfOperation, false},
		{pki.ReasonCessationOfOperation, pki.ReasonUnspecified, false},
	} {
		prev := listWith(t, tc.from)
		_, _, _, err := crl.SignRootCRL(root, prev, []crl.RootRevocation{{Cert: issuing, RevokedAt: f.Clock.Now(), Reason: tc.to}}, f.Clock.Now(), time.Hour)
		if refused := errors.Is(err, crl.ErrReasonDowngrade); refused != tc.refused || (err != nil && !refused) {
			t.Errorf("listed with reason %d, changed to %d: %v, want refused %v", tc.from, tc.to, err, tc.refused)
		}
	}
}
