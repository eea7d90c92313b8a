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

// claimStep is one claim and what it should answer: its error, and
// whether it took over a row of its transaction or made a new one.
type claimStep struct {
	name     string
	claim    store.TransactionClaim
	serial   string
	want     error
	tookOver bool
}

// claimSteps runs steps in order against s.
func claimSteps(t *testing.T, s store.Store, steps []claimStep) {
	t.Helper()
	for _, st := range steps {
		tookOver, err := s.ReserveSerialClaiming(context.Background(), st.claim, issuerA, st.serial, []byte("tbs"))
		wantErr(t, st.name, err, st.want)
		if err == nil && tookOver != st.tookOver {
			t.Errorf("%s: took over %v, want %v", st.name, tookOver, st.tookOver)
		}
	}
}

// recordClaimed records a certificate of serial at `at` that ends c.
func recordClaimed(t *testing.T, s store.Store, serial string, at time.Time, c store.TransactionClaim) {
	t.Helper()
	cert := newCert(issuerA, serial, at.Add(time.Hour))
	in := issuance(cert, issuedEvent(cert))
	in.Now, in.Claim = at, &c
	wantErr(t, "record issuance "+serial, s.RecordIssuance(context.Background(), in), nil)
}

// One claimant at a time holds a transaction: another's claim reserves
// nothing, its own again holds, an expired, ended or released claim is
// taken over (and said to be), and a taken serial claims nothing.
func testTransactionClaims(t *testing.T, s store.Store) {
	ctx := context.Background()
	otherKey, otherProfile := claimOf("b", "tx1", t0), claimOf("b", "tx1", t0)
	otherKey.KeyHash, otherProfile.Profile = []byte("another-key-hash"), "q"
	claimSteps(t, s, []claimStep{
		{"first claim", claimOf("a", "tx1", t0), "c1", nil, false},
		{"another claimant", claimOf("b", "tx1", t0.Add(time.Second)), "c2", store.ErrTransactionClaimed, false},
		{"the claimant again", claimOf("a", "tx1", t0.Add(time.Second)), "c3", nil, true},
		{"another transaction", claimOf("b", "tx2", t0), "c4", nil, false},
		{"another key", otherKey, "c5", nil, false},
		{"another profile", otherProfile, "c6", nil, false},
		{"taken serial", claimOf("c", "tx3", t0), "c1", store.ErrConflict, false},
		// The claim of the taken serial was rolled back with it.
		{"transaction of the taken serial", claimOf("d", "tx3", t0), "c7", nil, false},
		{"just before expiry", claimOf("b", "tx1", t0.Add(time.Minute)), "c8", store.ErrTransactionClaimed, false},
		{"expired claim taken over", claimOf("b", "tx1", t0.Add(time.Second+time.Minute)), "c9", nil, true},
		{"the one taken over", claimOf("a", "tx1", t0.Add(2*time.Minute)), "ca", store.ErrTransactionClaimed, false},
	})
	// A claim that did not hold reserved nothing; every one that held did.
	for serial, want := range map[string]error{"c2": nil, "c8": nil, "ca": nil, "c3": store.ErrConflict, "c9": store.ErrConflict} {
		wantErr(t, "serial "+serial+" reserved again", s.ReserveSerial(ctx, issuerA, serial, nil, t0), want)
	}

	// Only the holder releases. A released claim is kept, ended: the next
	// claim takes it over.
	later := t0.Add(90 * time.Second)
	wantErr(t, "release by another", s.ReleaseTransactionClaim(ctx, claimOf("a", "tx1", later)), nil)
	claimSteps(t, s, []claimStep{{"claim after another's release", claimOf("e", "tx1", later), "d1", store.ErrTransactionClaimed, false}})
	wantErr(t, "release by the holder", s.ReleaseTransactionClaim(ctx, claimOf("b", "tx1", later)), nil)
	claimSteps(t, s, []claimStep{{"claim after the holder's release", claimOf("e", "tx1", later), "d2", nil, true}})
	wantErr(t, "release of nothing", s.ReleaseTransactionClaim(ctx, claimOf("e", "tx-none", later)), nil)
	claimSteps(t, s, []claimStep{{"claim after the release of nothing", claimOf("f", "tx-none", later), "d3", nil, false}})

	// Recording the issuance ends its claim: the transaction is claimed
	// again at once, even by a claimant whose clock lags, and taken over.
	rec := claimOf("h", "tx-rec", t0)
	claimSteps(t, s, []claimStep{
		{"claim of the issuance", rec, "f1", nil, false},
		{"claim while it signs", claimOf("i", "tx-rec", t0.Add(time.Second)), "f2", store.ErrTransactionClaimed, false},
	})
	recordClaimed(t, s, "f1", t0, rec)
	claimSteps(t, s, []claimStep{{"claim after the record", claimOf("i", "tx-rec", t0.Add(-time.Hour)), "f3", nil, true}})

	// An issuance of a transaction that made no claim (a renewal) leaves
	// an ended one, which the next claim takes over; it leaves a live
	// claim of another to its claimant.
	recordClaimed(t, s, "g1", t0, claimOf("j", "tx-unheld", t0))
	claimSteps(t, s, []claimStep{
		{"claim after an unclaimed record", claimOf("k", "tx-unheld", t0.Add(-time.Hour)), "g2", nil, true},
		{"claim of another", claimOf("l", "tx-live", t0), "g3", nil, false},
	})
	recordClaimed(t, s, "g4", t0, claimOf("m", "tx-live", t0))
	claimSteps(t, s, []claimStep{{"claim after an unclaimed record beside a live claim", claimOf("n", "tx-live", t0.Add(time.Second)), "g5", store.ErrTransactionClaimed, false}})
	wantErr(t, "release of the live claim", s.ReleaseTransactionClaim(ctx, claimOf("l", "tx-live", t0.Add(2*time.Second))), nil)
	claimSteps(t, s, []claimStep{{"claim after its release", claimOf("n", "tx-live", t0.Add(3*time.Second)), "g6", nil, true}})
}

// TransactionClaimOf reads a claim as it stands: live, ended by its
// record or its release, or lapsed; none for a transaction never claimed,
// or claimed under another key or profile.
func testTransactionClaimOf(t *testing.T, s store.Store) {
	ctx := context.Background()
	live, recorded, released := claimOf("a", "tx-of-live", t0), claimOf("b", "tx-of-recorded", t0), claimOf("c", "tx-of-released", t0)
	claimSteps(t, s, []claimStep{
		{"live claim", live, "o1", nil, false},
		{"claim to record", recorded, "o2", nil, false},
		{"claim to release", released, "o3", nil, false},
	})
	recordClaimed(t, s, "o2", t0.Add(time.Second), recorded)
	wantErr(t, "release", s.ReleaseTransactionClaim(ctx, claimOf("c", "tx-of-released", t0.Add(2*time.Second))), nil)
	for _, tt := range []struct {
		name, tx, claimant string
		at, expires        time.Time
	}{
		{"live", "tx-of-live", "a", t0, t0.Add(time.Minute)},
		{"ended by its record", "tx-of-recorded", "b", t0.Add(time.Second), time.Time{}},
		{"ended by its release", "tx-of-released", "c", t0.Add(2 * time.Second), time.Time{}},
	} {
		c, err := s.TransactionClaimOf(ctx, live.KeyHash, "p", tt.tx)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if string(c.Claimant) != tt.claimant || !c.At.Equal(tt.at) || !c.Expires.Equal(tt.expires) {
			t.Errorf("%s: claimant %q at %v expires %v, want %q at %v expires %v", tt.name, c.Claimant, c.At, c.Expires, tt.claimant, tt.at, tt.expires)
		}
	}
	for name, look := range map[string]func() (*store.TransactionClaim, error){
		"never claimed": func() (*store.TransactionClaim, error) {
			return s.TransactionClaimOf(ctx, live.KeyHash, "p", "tx-of-none")
		},
		"another key": func() (*store.TransactionClaim, error) {
			return s.TransactionClaimOf(ctx, []byte("another-key-hash"), "p", "tx-of-live")
		},
		"another profile": func() (*store.TransactionClaim, error) {
			return s.TransactionClaimOf(ctx, live.KeyHash, "q", "tx-of-live")
		},
	} {
		_, err := look()
		wantErr(t, name, err, store.ErrNotFound)
	}
}

// PurgeExpired keeps a claim that ended (recorded or released) or lapsed
// for store.EndedClaimRetention, so that the next claim takes it over and
// looks for a certificate recorded meanwhile, and removes it then; a live
// claim stays.
func testTransactionClaimsPurge(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, pair := range []string{"a", "b"} {
		released, recorded := claimOf("p", "tx-released-"+pair, t0), claimOf("p", "tx-recorded-"+pair, t0)
		claimSteps(t, s, []claimStep{
			{"claim to release", released, "r1" + pair, nil, false},
			{"claim to record", recorded, "r2" + pair, nil, false},
			{"claim to lapse", claimOf("p", "tx-lapsed-"+pair, t0), "r3" + pair, nil, false},
		})
		wantErr(t, "release", s.ReleaseTransactionClaim(ctx, released), nil)
		recordClaimed(t, s, "r2"+pair, t0, recorded)
	}
	long := claimOf("p", "tx-long", t0)
	long.Expires = t0.Add(time.Hour)
	claimSteps(t, s, []claimStep{{"long claim", long, "r4", nil, false}})

	// The lapsed claims lapsed at t0+1m, the others ended at t0.
	purge := func(at time.Time) {
		t.Helper()
		if err := s.PurgeExpired(ctx, at); err != nil {
			t.Fatal(err)
		}
	}
	purge(t0.Add(store.EndedClaimRetention - time.Second))
	kept := t0.Add(store.EndedClaimRetention)
	claimSteps(t, s, []claimStep{
		{"released claim within the retention", claimOf("q", "tx-released-a", kept), "s1", nil, true},
		{"recorded claim within the retention", claimOf("q", "tx-recorded-a", kept), "s2", nil, true},
		{"lapsed claim within the retention", claimOf("q", "tx-lapsed-a", kept), "s3", nil, true},
	})
	gone := t0.Add(time.Minute + store.EndedClaimRetention)
	purge(gone)
	claimSteps(t, s, []claimStep{
		{"released claim after the retention", claimOf("q", "tx-released-b", gone), "t1", nil, false},
		{"recorded claim after the retention", claimOf("q", "tx-recorded-b", gone), "t2", nil, false},
		{"lapsed claim after the retention", claimOf("q", "tx-lapsed-b", gone), "t3", nil, false},
		// Claimed again while the long claim would still hold.
		{"live claim", claimOf("q", "tx-long", t0), "t4", store.ErrTransactionClaimed, false},
	})
}

// Of claimants racing for one transaction, on any connection or node,
// exactly one wins; it says whether the transaction had a row (here, an
// ended claim in the last round).
func testConcurrentTransactionClaims(t *testing.T, s store.Store) {
	ctx := context.Background()
	ended := claimOf("ended", "tx-race-3", t0)
	recordClaimed(t, s, "5e", t0, ended)
	for round := range 4 {
		tx := fmt.Sprintf("tx-race-%d", round)
		tookOver := make([]bool, 16)
		errs := start(16, func(i int) error {
			var err error
			tookOver[i], err = s.ReserveSerialClaiming(ctx, claimOf(fmt.Sprint(i), tx, t0), issuerA, fmt.Sprintf("%02x%02x", round, i), nil)
			return err
		})
		exactlyOneWins(t, errs, store.ErrTransactionClaimed, "goroutines claimed "+tx)
		for i, err := range errs {
			if want := round == 3; err == nil && tookOver[i] != want {
				t.Errorf("%s: the winner took over %v, want %v", tx, tookOver[i], want)
			}
		}
	}
}
