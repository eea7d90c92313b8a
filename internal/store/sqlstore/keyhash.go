package sqlstore

import (
	"cmp"
	"crypto/x509"
	"slices"

	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// KeyHashBatch is how many certificates one transaction of the key_hash
// backfill hashes: a few milliseconds of the writer each, so that the
// backfill of a large inventory never holds it for long at a time.
const KeyHashBatch = 2000

// KeyHash is a certificate's key_hash column: store.CertKeyHash of its
// DER, or NULL for a DER that holds no key (a record made by hand), which
// no other certificate can then share.
func KeyHash(der []byte) any {
	h, err := store.CertKeyHash(der)
	if err != nil {
		return nil
	}
	return h
}

// IssuanceKeyHash is in's key_hash column: the hash its caller made, or
// KeyHash of its certificate's DER.
func IssuanceKeyHash(in *store.Issuance) any {
	if in.KeyHash != nil {
		return in.KeyHash
	}
	return KeyHash(in.Certificate.DER)
}

// GenerationOwnKey is the *store.OwnKeyError of a key that is the
// issuing CA issuerID's, whose certificate is der (a ca_generations row):
// named by the certificate's subject, or by its ID alone when der does
// not parse. Read on a refusal only.
func GenerationOwnKey(issuerID string, der []byte) *store.OwnKeyError {
	own := &store.OwnKeyError{IssuerID: issuerID}
	if c, err := x509.ParseCertificate(der); err == nil {
		own.Subject = c.Subject.String()
	}
	return own
}

// GenerationKey is a ca_generations row to hash (issuer_id, issuer_der)
// and, once hashed, its key_hash.
type GenerationKey struct {
	IssuerID string
	DER      []byte
	KeyHash  []byte
}

// ScanGenerationKey reads issuer_id, issuer_der.
func ScanGenerationKey(sc Scanner) (GenerationKey, error) {
	var g GenerationKey
	err := sc.Scan(&g.IssuerID, &g.DER)
	return g, err
}

// HashedGenerations hashes gs's keys, leaving out a DER that holds none.
func HashedGenerations(gs []GenerationKey) []GenerationKey {
	out := gs[:0]
	for _, g := range gs {
		if h, ok := KeyHash(g.DER).([]byte); ok {
			g.KeyHash = h
			out = append(out, g)
		}
	}
	return out
}

// CompromisedSweepBatch is how many keys recorded as compromised one
// transaction of the upgrade's sweep (schema version 32) takes: each may
// revoke many certificates, so fewer than KeyHashBatch.
const CompromisedSweepBatch = 100

// Notes added to the detail of the events of a key's certificates that a
// start-up sweep revoked rather than the revocation itself: one whose key
// hash an older server left out (fillMissingKeyHashes), or one an older
// scepter's keyCompromise revocation left valid (the upgrade's sweep).
const (
	NoteKeyHashFilledIn = " (its key hash filled in at start-up: recorded by a server that wrote none)"
	NoteUpgradeSweep    = " (at the upgrade: the revocation was made by an older scepter, which left the key's other certificates valid)"
)

// KeySibling is another certificate of a compromised key that a
// revocation took along, as its UPDATE returned it.
type KeySibling struct {
	Cert pki.Certificate
	// WasHeld is true for one that was on hold (certificateHold), whose
	// hold became the keyCompromise revocation.
	WasHeld bool
}

// KeySiblingEvents are the events of the other certificates of a key
// revoked along with target (ev is target's event), in the order of
// refs, which it returns as well: by issuer, then serial.
func KeySiblingEvents(target *pki.Certificate, ev pki.AuditEvent, sibs []KeySibling) ([]pki.AuditEvent, []store.CertRef) {
	slices.SortFunc(sibs, func(a, b KeySibling) int {
		return cmp.Or(cmp.Compare(a.Cert.IssuerID, b.Cert.IssuerID), cmp.Compare(a.Cert.SerialHex, b.Cert.SerialHex))
	})
	events := make([]pki.AuditEvent, 0, len(sibs))
	refs := make([]store.CertRef, 0, len(sibs))
	for _, s := range sibs {
		detail := store.SharesKeyDetail(target.IssuerID, target.SerialHex)
		if s.WasHeld {
			detail = store.DetailHoldMadePermanent + "; " + detail
		}
		events = append(events, pki.AuditEvent{Time: ev.Time, Type: pki.EventRevoked, Actor: ev.Actor,
			Profile: s.Cert.Profile, SerialHex: s.Cert.SerialHex, IssuerID: s.Cert.IssuerID, Subject: s.Cert.Subject,
			Outcome: ev.Outcome, Reason: ev.Reason, Detail: detail})
		refs = append(refs, store.CertRef{IssuerID: s.Cert.IssuerID, SerialHex: s.Cert.SerialHex})
	}
	return events, refs
}

// RevokedIssuers is the issuers whose revocation state a revocation of
// target and sibs bumps, each once, sorted (two revocations bump them in
// the same order).
func RevokedIssuers(target string, sibs []KeySibling) []string {
	ids := []string{target}
	for _, s := range sibs {
		ids = append(ids, s.Cert.IssuerID)
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// RequestKeysHashes are the values RequestByTransaction compares the
// key_hash and client_key_hash columns of enrollment_requests with: NULL
// (matching nothing) for a key keys does not give.
func RequestKeysHashes(keys store.RequestKeys) (csr, client any) {
	if keys.CSR != nil {
		csr = store.KeyHash(keys.CSR)
	}
	if keys.Client != nil {
		client = store.KeyHash(keys.Client)
	}
	return csr, client
}
