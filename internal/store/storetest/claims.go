package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/store"
)

// claimOf is a claim on transaction tx of the suite's key at profile "p",
// made by claimant who at `at`, for a minute.
func claimOf(who, tx string, at time.Time) store.TransactionClaim {
	return store.TransactionClaim{KeyHash: []byte("key-hash-of-the-device-key-00000"), Profile: "p", TransactionID: tx,
		Claimant: []byte(who), At: at, Expires: at.Add(time.Minute)}
}

// One claimant at a time holds a transaction: another's claim reserves
// nothing, its own again holds, an expired or released claim is taken
// over, and a taken serial claims nothing.
func testTransactionClaims(t *testing.T, s store.Store) {
	ctx := context.Background()
	claim := func(c store.TransactionClaim, serial string) error {
		return s.ReserveSerialClaiming(ctx, c, issuerA, serial, []byte("tbs"))
	}
	otherKey, otherProfile := claimOf("b", "tx1", t0), claimOf("b", "tx1", t0)
	otherKey.KeyHash, otherProfile.Profile = []byte("another-key-hash"), "q"
	steps := []struct {
		name   string
		claim  store.TransactionClaim
		serial string
		want   error
	}{
		{"first claim", claimOf("a", "tx1", t0), "c1", nil},
		{"another claimant", claimOf("b", "tx1", t0.Add(time.Second)), "c2", store.ErrTransactionClaimed},
		{"the claimant again", claimOf("a", "tx1", t0.Add(time.Second)), "c3", nil},
		{"another transaction", claimOf("b", "tx2", t0), "c4", nil},
		{"another key", otherKey, "c5", nil},
		{"another profile", otherProfile, "c6", nil},
		{"taken serial", claimOf("c", "tx3", t0), "c1", store.ErrConflict},
		{"transaction of the taken serial", claimOf("d", "tx3", t0), "c7", nil},
		{"just before expiry", claimOf("b", "tx1", t0.Add(time.Minute)), "c8", store.ErrTransactionClaimed},
		{"expired claim taken over", claimOf("b", "tx1", t0.Add(time.Second+time.Minute)), "c9", nil},
		{"the one taken over", claimOf("a", "tx1", t0.Add(2*time.Minute)), "ca", store.ErrTransactionClaimed},
	}
	for _, st := range steps {
		wantErr(t, st.name, claim(st.claim, st.serial), st.want)
	}
	// A claim that did not hold reserved nothing; every one that held did.
	for serial, want := range map[string]error{"c2": nil, "c8": nil, "ca": nil, "c3": store.ErrConflict, "c9": store.ErrConflict} {
		wantErr(t, "serial "+serial+" reserved again", s.ReserveSerial(ctx, issuerA, serial, nil, t0), want)
	}

	// Only the holder releases.
	later := t0.Add(90 * time.Second)
	wantErr(t, "release by another", s.ReleaseTransactionClaim(ctx, claimOf("a", "tx1", later)), nil)
	wantErr(t, "claim after another's release", claim(claimOf("e", "tx1", later), "d1"), store.ErrTransactionClaimed)
	wantErr(t, "release by the holder", s.ReleaseTransactionClaim(ctx, claimOf("b", "tx1", later)), nil)
	wantErr(t, "claim after the holder's release", claim(claimOf("e", "tx1", later), "d2"), nil)
	wantErr(t, "release of nothing", s.ReleaseTransactionClaim(ctx, claimOf("e", "tx-none", later)), nil)

	// Recording the issuance ends its claim: the transaction is claimed
	// again at once, even by a claimant whose clock lags.
	rec := claimOf("h", "tx-rec", t0)
	wantErr(t, "claim of the issuance", claim(rec, "f1"), nil)
	wantErr(t, "claim while it signs", claim(claimOf("i", "tx-rec", t0.Add(time.Second)), "f2"), store.ErrTransactionClaimed)
	cert := newCert(issuerA, "f1", t0.Add(time.Hour))
	in := issuance(cert, issuedEvent(cert))
	in.Claim = &rec
	wantErr(t, "record issuance", s.RecordIssuance(ctx, in), nil)
	wantErr(t, "claim after the record", claim(claimOf("i", "tx-rec", t0.Add(-time.Hour)), "f3"), nil)

	// PurgeExpired removes the claims that lapsed, and only those.
	short := claimOf("f", "tx-short", t0)
	long := claimOf("f", "tx-long", t0)
	long.Expires = t0.Add(time.Hour)
	wantErr(t, "short claim", claim(short, "e1"), nil)
	wantErr(t, "long claim", claim(long, "e2"), nil)
	if err := s.PurgeExpired(ctx, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	// Claimed at t0 again, when the short claim would still hold.
	wantErr(t, "purged claim", claim(claimOf("g", "tx-short", t0), "e3"), nil)
	wantErr(t, "kept claim", claim(claimOf("g", "tx-long", t0), "e4"), store.ErrTransactionClaimed)
}

// Of claimants racing for one transaction, on any connection or node,
// exactly one wins.
func testConcurrentTransactionClaims(t *testing.T, s store.Store) {
	ctx := context.Background()
	for round := range 3 {
		tx := fmt.Sprintf("tx-race-%d", round)
		errs := start(16, func(i int) error {
			return s.ReserveSerialClaiming(ctx, claimOf(fmt.Sprint(i), tx, t0), issuerA, fmt.Sprintf("%02x%02x", round, i), nil)
		})
		exactlyOneWins(t, errs, store.ErrTransactionClaimed, "goroutines claimed "+tx)
	}
}
