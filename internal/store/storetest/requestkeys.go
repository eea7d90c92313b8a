package storetest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"slices"
	"testing"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// testRequestsKeyedByKey: a held request's transaction is its (profile,
// transaction ID) and its key. Another key's request under the same ID is
// created beside a pending one, and each key finds its own; the same key
// is refused while its request is pending; a renewal's is found by the
// key of the certificate that authenticated it as well.
func testRequestsKeyedByKey(t *testing.T, s store.Store) {
	ctx := context.Background()
	victim, squatter, renewed, old := newKey(t), newKey(t), newKey(t), newKey(t)
	held := func(id, tx string, k *ecdsa.PrivateKey) pki.EnrollmentRequest {
		r := newRequest(id, "default", tx)
		r.CSR, r.ClientCert = csrOf(t, k), nil
		return r
	}
	create := func(what string, r pki.EnrollmentRequest, want error) {
		t.Helper()
		wantErr(t, what, s.CreateRequest(ctx, r, nil, pendingEvent(r)), want)
	}
	find := func(what, tx string, keys store.RequestKeys, wantID string) {
		t.Helper()
		got, err := s.RequestByTransaction(ctx, "default", tx, keys)
		if wantID == "" {
			wantErr(t, what, err, store.ErrNotFound)
			return
		}
		if err != nil || got.ID != wantID {
			t.Errorf("%s: %+v, %v; want request %s", what, got, err, wantID)
		}
	}
	spki := func(k *ecdsa.PrivateKey) []byte {
		der, err := x509.MarshalPKIXPublicKey(k.Public())
		if err != nil {
			t.Fatal(err)
		}
		return der
	}

	create("the squatter's request", held("k-squat", "tx-k", squatter), nil)
	create("the victim's request under the same ID", held("k-victim", "tx-k", victim), nil)
	create("the victim's request again while pending", held("k-victim-2", "tx-k", victim), store.ErrConflict)
	find("by the victim's key", "tx-k", store.RequestKeys{CSR: spki(victim)}, "k-victim")
	find("by the squatter's key", "tx-k", store.RequestKeys{CSR: spki(squatter)}, "k-squat")
	find("by any key: the newest", "tx-k", store.RequestKeys{}, "k-victim")
	find("by a third key", "tx-k", store.RequestKeys{CSR: spki(old), Client: spki(old)}, "")

	if err := s.RejectRequest(ctx, "k-victim", "no", "cli:root", t0, pki.AuditEvent{Type: pki.EventRequestRejected}); err != nil {
		t.Fatal(err)
	}
	find("the squatter's, after the victim's was rejected", "tx-k", store.RequestKeys{CSR: spki(squatter)}, "k-squat")
	create("the victim's request after its rejection", held("k-victim-3", "tx-k", victim), nil)
	find("by the victim's key, after its new request", "tx-k", store.RequestKeys{CSR: spki(victim)}, "k-victim-3")

	// A renewal with a new key, authenticated by the old certificate.
	renewal := held("k-renewal", "tx-r", renewed)
	renewal.ClientCert = certOf(t, old)
	create("a renewal", renewal, nil)
	find("a renewal by its new key", "tx-r", store.RequestKeys{CSR: spki(renewed)}, "k-renewal")
	find("a renewal by its old certificate's key", "tx-r", store.RequestKeys{Client: spki(old)}, "k-renewal")
	find("a renewal, the old certificate's key as a CSR's", "tx-r", store.RequestKeys{CSR: spki(old)}, "")
	find("a renewal, its new key as a certificate's", "tx-r", store.RequestKeys{Client: spki(renewed)}, "")

	// By key alone, under any transaction ID, newest first: EST derives
	// its IDs from the request, so a CSR sent again with its subject
	// encoded otherwise has another.
	create("the victim's request under another ID", held("k-victim-4", "tx-other", victim), nil)
	other := newRequest("k-other-profile", "other", "tx-k")
	other.CSR, other.ClientCert = csrOf(t, victim), nil
	create("the victim's request at another profile", other, nil)
	byKey := func(what, profile string, k *ecdsa.PrivateKey, wantIDs ...string) {
		t.Helper()
		got, err := s.RequestsByKey(ctx, profile, spki(k))
		var ids []string
		for _, r := range got {
			ids = append(ids, r.ID)
		}
		if err != nil || !slices.Equal(ids, wantIDs) {
			t.Errorf("%s: %v, %v; want %v", what, ids, err, wantIDs)
		}
	}
	byKey("the victim's by key", "default", victim, "k-victim-4", "k-victim-3", "k-victim")
	byKey("the victim's at the other profile", "other", victim, "k-other-profile")
	byKey("the squatter's by key", "default", squatter, "k-squat")
	byKey("a renewal's, by its old certificate's key", "default", old)
	byKey("at a profile with none", "nowhere", victim)
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func csrOf(t *testing.T, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "device"}}, k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func certOf(t *testing.T, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "device"}, NotBefore: t0, NotAfter: t0.Add(day)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// RunLegacyRequests checks the requests held before schema version 27,
// which have no key hashes (exec clears them, as they were): each is
// still found by its own key, the CSR's or its certificate's, and not by
// another.
func RunLegacyRequests(t *testing.T, open func(t *testing.T) (store.Store, Exec)) {
	s, exec := open(t)
	ctx := context.Background()
	first, renewed, old, other := newKey(t), newKey(t), newKey(t), newKey(t)
	a := newRequest("old-a", "default", "tx-old")
	a.CSR, a.ClientCert = csrOf(t, first), nil
	b := newRequest("old-b", "default", "tx-old")
	b.CSR, b.ClientCert = csrOf(t, renewed), certOf(t, old)
	mustCreateRequest(t, s, a)
	mustCreateRequest(t, s, b)
	exec(t, `UPDATE enrollment_requests SET key_hash = NULL, client_key_hash = NULL`)
	spki := func(k *ecdsa.PrivateKey) []byte {
		der, err := x509.MarshalPKIXPublicKey(k.Public())
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	for _, c := range []struct {
		name   string
		keys   store.RequestKeys
		wantID string
	}{
		{"the first one's key", store.RequestKeys{CSR: spki(first), Client: spki(first)}, "old-a"},
		{"the renewal's new key", store.RequestKeys{CSR: spki(renewed)}, "old-b"},
		{"the renewal's old certificate's key", store.RequestKeys{Client: spki(old)}, "old-b"},
		{"another key", store.RequestKeys{CSR: spki(other), Client: spki(other)}, ""},
	} {
		got, err := s.RequestByTransaction(ctx, "default", "tx-old", c.keys)
		if c.wantID == "" {
			wantErr(t, c.name, err, store.ErrNotFound)
			continue
		}
		if err != nil || got.ID != c.wantID {
			t.Errorf("%s: %+v, %v; want request %s", c.name, got, err, c.wantID)
		}
	}
	// By key alone, matched by their CSRs.
	for _, c := range []struct {
		name   string
		k      *ecdsa.PrivateKey
		wantID string
	}{
		{"by key, the first one's", first, "old-a"},
		{"by key, the renewal's new key", renewed, "old-b"},
		{"by key, the renewal's old certificate's key", old, ""},
	} {
		got, err := s.RequestsByKey(ctx, "default", spki(c.k))
		if err != nil || (c.wantID == "") != (len(got) == 0) || (c.wantID != "" && (len(got) != 1 || got[0].ID != c.wantID)) {
			t.Errorf("%s: %+v, %v; want request %q alone", c.name, got, err, c.wantID)
		}
	}
}
