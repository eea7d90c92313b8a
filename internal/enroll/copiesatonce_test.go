package enroll_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/postgres"
	"github.com/scepter/scepter/internal/store/postgres/pgtest"
)

// sendCopies sends copies of req at once, each to the next of services,
// and returns what each was answered.
func sendCopies(services []*enroll.Service, copies int, req enroll.Request) ([]*enroll.Result, []error) {
	results, errs := make([]*enroll.Result, copies), make([]error, copies)
	gate := make(chan struct{})
	var wg sync.WaitGroup
	for i := range copies {
		wg.Go(func() {
			<-gate
			results[i], errs[i] = services[i%len(services)].Enroll(context.Background(), req)
		})
	}
	close(gate)
	wg.Wait()
	return results, errs
}

// checkOneCertificate: every copy of round's request was answered with
// the one certificate the store holds for its transaction.
func checkOneCertificate(t *testing.T, st store.Store, round string, req enroll.Request, results []*enroll.Result, errs []error) {
	t.Helper()
	hash, err := store.PublicKeyHash(req.CSR.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := st.CertificatesOfTransaction(context.Background(), hash, "default", req.TransactionID, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(certs) != 1 {
		t.Fatalf("%s: %d certificates issued for one transaction, want 1", round, len(certs))
	}
	issued := 0
	for i, res := range results {
		if errs[i] != nil {
			t.Errorf("%s: copy %d: %v", round, i, errs[i])
			continue
		}
		if res.Record.SerialHex != certs[0].SerialHex {
			t.Errorf("%s: copy %d answered with %s, want %s", round, i, res.Record.SerialHex, certs[0].SerialHex)
		}
		if !res.SentAgain {
			issued++
		}
	}
	if issued != 1 {
		t.Errorf("%s: %d copies were answered as the issuance, want 1 (the others sent again)", round, issued)
	}
}

// Copies of one SCEP PKCSReq (the same key, CSR and transaction ID, a
// static challenge) sent at once to one node get one certificate, every
// copy that one.
func TestCopiesAtOnceGetOneCertificate(t *testing.T) {
	f := newFixture(t, nil, "")
	for round := range 5 {
		req := request(t, static, "dev.example")
		req.TransactionID = fmt.Sprintf("tx-copies-%d", round)
		results, errs := sendCopies([]*enroll.Service{f.svc}, 8, req)
		checkOneCertificate(t, f.st, req.TransactionID, req, results, errs)
	}
}

// The same with copies sent to two nodes on one PostgreSQL database.
func TestCopiesAtOnceToTwoNodesGetOneCertificate(t *testing.T) {
	url := pgtest.Database(t)
	dir := t.TempDir()
	clock := pkitest.NewClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	if _, _, err := ca.LoadOrCreate(dir, ca.InitOptions{GenerateKey: testKeys.Generate}, clock); err != nil {
		t.Fatal(err)
	}
	var nodes []*enroll.Service
	var st store.Store
	for range 2 {
		auth, _, err := ca.LoadOrCreate(dir, ca.InitOptions{GenerateKey: testKeys.Generate}, clock)
		if err != nil {
			t.Fatal(err)
		}
		pg, err := postgres.Open(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pg.Close() })
		svc, err := enroll.New(pg, auth, clock, slog.New(slog.DiscardHandler), enroll.Config{StaticChallenge: static})
		if err != nil {
			t.Fatal(err)
		}
		nodes, st = append(nodes, svc), pg
	}
	for round := range 5 {
		req := request(t, static, "dev.example")
		req.TransactionID = fmt.Sprintf("tx-nodes-%d", round)
		results, errs := sendCopies(nodes, 8, req)
		checkOneCertificate(t, st, req.TransactionID, req, results, errs)
	}
}

// failingRecord fails every RecordIssuance with err, as long as it is set.
type failingRecord struct {
	store.Store
	err   atomic.Pointer[error]
	tries atomic.Int32
}

func (s *failingRecord) RecordIssuance(ctx context.Context, in store.Issuance) error {
	if err := s.err.Load(); err != nil {
		s.tries.Add(1)
		return *err
	}
	return s.Store.RecordIssuance(ctx, in)
}

// When the copy that signs fails to record its certificate, the others are
// told to retry (503) and never issued one of their own. A refusal
// releases the transaction at once; a store that failed (it may have
// recorded it) keeps it claimed until the claim lapses.
func TestCopiesAtOnceWhenTheIssuanceFails(t *testing.T) {
	cases := []struct {
		name string
		err  error
		// lapse is how long the next try must wait for the claim: none
		// when it was released, and copies that had not claimed it yet
		// try (and fail) in turn.
		lapse time.Duration
	}{
		{"refused", store.ErrKeyCompromised, 0},
		{"store unavailable", fmt.Errorf("record: %w", store.ErrUnavailable), 5 * time.Minute},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, nil, "")
			st := &failingRecord{Store: f.st}
			st.err.Store(&c.err)
			svc, err := enroll.New(st, f.auth, f.clock, slog.New(slog.DiscardHandler), enroll.Config{StaticChallenge: static})
			if err != nil {
				t.Fatal(err)
			}
			svc.SetClaimWait(300 * time.Millisecond)
			req := request(t, static, "dev.example")
			_, errs := sendCopies([]*enroll.Service{svc}, 4, req)
			if n := st.tries.Load(); c.lapse > 0 && n != 1 {
				t.Errorf("%d copies signed and tried to record, want 1", n)
			}
			for i, err := range errs {
				if err == nil {
					t.Errorf("copy %d succeeded", i)
				} else if !errors.Is(err, c.err) && pki.ErrorCode(err) != pki.EUnavailable {
					t.Errorf("copy %d: %v, want the failure or a retry (503)", i, err)
				}
			}
			st.err.Store(nil)
			if c.lapse > 0 {
				if _, err := svc.Enroll(context.Background(), req); pki.ErrorCode(err) != pki.EUnavailable {
					t.Errorf("the next try while the claim holds: %v, want a retry (503)", err)
				}
				f.clock.Advance(c.lapse)
			}
			res, err := svc.Enroll(context.Background(), req)
			if err != nil || res.SentAgain {
				t.Fatalf("the next try: %+v, %v; want a certificate", res, err)
			}
		})
	}
}

// blindLookup finds no certificate of a transaction the first time it is
// asked: the look a request makes before a copy of it records one. That
// first look takes stall on clock, if set (a node stalled between its
// look and its claim).
type blindLookup struct {
	store.Store
	looked atomic.Bool
	clock  *pkitest.Clock
	stall  time.Duration
}

func (s *blindLookup) CertificatesOfTransaction(ctx context.Context, keyHash []byte, profile, transactionID string, after time.Time) ([]pki.Certificate, error) {
	if !s.looked.Swap(true) {
		if s.clock != nil {
			s.clock.Advance(s.stall)
		}
		return nil, nil
	}
	return s.Store.CertificatesOfTransaction(ctx, keyHash, profile, transactionID, after)
}

// lookAgainCases are the ways a request's claim must not be trusted to
// prove that no copy of it was issued since it looked: each records the
// copy's certificate (first) and returns the store the request is then
// sent to, whose first look is blind to that certificate.
var lookAgainCases = []struct {
	name  string
	setup func(t *testing.T, f *fixture, req enroll.Request) (first *enroll.Result, st *blindLookup)
}{
	// The copy ended its claim; the request's claim takes it over.
	{"claim taken over", func(t *testing.T, f *fixture, req enroll.Request) (*enroll.Result, *blindLookup) {
		first, err := f.svc.Enroll(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		return first, &blindLookup{Store: f.st}
	}},
	// The copy's ended claim is purged, as it may be once
	// store.EndedClaimRetention is over, and the request, whose look came
	// before the copy's record, stalled that long: its claim makes a new
	// row, which proves nothing about a look that old.
	{"look older than the retention", func(t *testing.T, f *fixture, req enroll.Request) (*enroll.Result, *blindLookup) {
		first, err := f.svc.Enroll(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.st.PurgeExpired(context.Background(), f.clock.Now().Add(store.EndedClaimRetention+time.Second)); err != nil {
			t.Fatal(err)
		}
		return first, &blindLookup{Store: f.st, clock: f.clock, stall: store.EndedClaimRetention + time.Second}
	}},
	// The copy claimed nothing (a one-time challenge's, found by its
	// challenge) but leaves a row all the same, which the request's claim
	// takes over.
	{"copy that made no claim", func(t *testing.T, f *fixture, req enroll.Request) (*enroll.Result, *blindLookup) {
		secret, _, err := f.admin.NewChallenge(context.Background(), time.Hour, "", "test")
		if err != nil {
			t.Fatal(err)
		}
		oneTime := req
		oneTime.Evidence.Challenge = secret
		first, err := f.svc.Enroll(context.Background(), oneTime)
		if err != nil {
			t.Fatal(err)
		}
		return first, &blindLookup{Store: f.st}
	}},
}

// A copy whose look for a certificate came before another copy recorded
// one, and whose claim comes after, looks again once it holds the claim,
// and is answered with that certificate.
func TestCopyIssuedBetweenLookAndClaim(t *testing.T) {
	for _, c := range lookAgainCases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, nil, "")
			req := request(t, static, "dev.example")
			first, st := c.setup(t, f, req)
			svc, err := enroll.New(st, f.auth, f.clock, slog.New(slog.DiscardHandler), enroll.Config{StaticChallenge: static})
			if err != nil {
				t.Fatal(err)
			}
			again, err := svc.Enroll(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if !again.SentAgain || again.Record.SerialHex != first.Record.SerialHex {
				t.Fatalf("the copy was answered with %s (sent again: %v), want %s sent again", again.Record.SerialHex, again.SentAgain, first.Record.SerialHex)
			}
			results := []*enroll.Result{first, again}
			checkOneCertificate(t, f.st, "copy", req, results, make([]error, 2))
		})
	}
}

// countedLookup counts the reads of a transaction's certificates.
type countedLookup struct {
	store.Store
	reads atomic.Int32
}

func (s *countedLookup) CertificatesOfTransaction(ctx context.Context, keyHash []byte, profile, transactionID string, after time.Time) ([]pki.Certificate, error) {
	s.reads.Add(1)
	return s.Store.CertificatesOfTransaction(ctx, keyHash, profile, transactionID, after)
}

// A SCEP enrollment of a new transaction reads its transaction's
// certificates once: its claim, a new row, proves that no copy recorded
// one since. A request of a transaction issued before reads them once
// too (it is answered from that look), and one whose claim takes over an
// ended claim (other names, one transaction) twice.
func TestOneLookPerSCEPEnrollment(t *testing.T) {
	f := newFixture(t, nil, "")
	st := &countedLookup{Store: f.st}
	svc, err := enroll.New(st, f.auth, f.clock, slog.New(slog.DiscardHandler), enroll.Config{StaticChallenge: static})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name      string
		dns       string
		sentAgain bool
		reads     int32
	}{
		{"new transaction", "dev.example", false, 1},
		{"the same request again", "dev.example", true, 1},
		{"other names, the same transaction", "other.example", false, 2},
	}
	for _, step := range steps {
		st.reads.Store(0)
		res, err := svc.Enroll(context.Background(), request(t, static, step.dns))
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if res.SentAgain != step.sentAgain {
			t.Errorf("%s: sent again %v, want %v", step.name, res.SentAgain, step.sentAgain)
		}
		if n := st.reads.Load(); n != step.reads {
			t.Errorf("%s: %d reads of the transaction's certificates, want %d", step.name, n, step.reads)
		}
	}
}

// Requests of one transaction and key with other names, sent at once (a
// client that derives its transaction ID from its key), are not copies:
// each gets a certificate of its own, one after the other.
func TestOtherNamesOfOneTransactionAtOnce(t *testing.T) {
	f := newFixture(t, nil, "")
	results, errs := make([]*enroll.Result, 4), make([]error, 4)
	var wg sync.WaitGroup
	for i := range results {
		req := request(t, static, fmt.Sprintf("dev%d.example", i))
		wg.Go(func() { results[i], errs[i] = f.svc.Enroll(context.Background(), req) })
	}
	wg.Wait()
	serials := map[string]bool{}
	for i, res := range results {
		if errs[i] != nil {
			t.Fatalf("request %d: %v", i, errs[i])
		}
		if res.SentAgain {
			t.Errorf("request %d was answered with another's certificate", i)
		}
		serials[res.Record.SerialHex] = true
	}
	if len(serials) != len(results) {
		t.Errorf("%d certificates for %d requests with other names", len(serials), len(results))
	}
}

// Copies of one SCEP renewal (the same new key, CSR and transaction ID,
// signed by the certificate it renews) sent at once get one certificate,
// every copy that one: also when the renewal revokes the certificate it
// renews, which must not turn the copies that lost into badCertId.
func TestRenewalCopiesAtOnceGetOneCertificate(t *testing.T) {
	for _, revoke := range []bool{false, true} {
		t.Run(fmt.Sprintf("revoke superseded: %v", revoke), func(t *testing.T) {
			p := pki.DefaultProfile()
			p.Name, p.RenewalWindow, p.RevokeSuperseded = "default", 1, revoke
			f := newFixtureWith(t, enroll.Config{Profiles: map[string]pki.Profile{"default": p}, DefaultProfile: "default"})
			for round := range 3 {
				name := fmt.Sprintf("renew-%d", round)
				first, err := f.svc.Enroll(context.Background(), namedWithKey(t, newKey(t), static, name, name+".example"))
				if err != nil {
					t.Fatal(err)
				}
				renew := namedWithKey(t, newKey(t), "", name, name+".example")
				renew.Renewal, renew.Evidence.SignerCert = true, first.Certificate
				renew.TransactionID = "tx-renew-" + name
				results, errs := sendCopies([]*enroll.Service{f.svc}, 6, renew)
				checkOneCertificate(t, f.st, renew.TransactionID, renew, results, errs)
			}
		})
	}
}

// claimlessRecordsCopy stands for a copy the claim did not hold back (a
// node of the version before claims, during a rolling upgrade): it
// reserves serials without claiming, and the first time it records, a
// copy of the request is issued by copyFirst just before.
type claimlessRecordsCopy struct {
	store.Store
	copyFirst func()
	copied    atomic.Bool
}

func (s *claimlessRecordsCopy) ReserveSerialClaiming(ctx context.Context, claim store.TransactionClaim, issuerID, serialHex string, tbs []byte) (bool, error) {
	return false, s.ReserveSerial(ctx, issuerID, serialHex, tbs, claim.At)
}

func (s *claimlessRecordsCopy) RecordIssuance(ctx context.Context, in store.Issuance) error {
	if !s.copied.Swap(true) {
		s.copyFirst()
	}
	return s.Store.RecordIssuance(ctx, in)
}

// A renewal whose certificate to renew was superseded, between its checks
// and its record, by a copy of itself (the same transaction, key and
// names) is answered with that copy's certificate, not badCertId: the
// device is left with the new certificate, not a revoked one alone.
func TestRenewalSupersededByItsCopyIsAnsweredWithIt(t *testing.T) {
	p := pki.DefaultProfile()
	p.Name, p.RenewalWindow, p.RevokeSuperseded = "default", 1, true
	cfg := enroll.Config{Profiles: map[string]pki.Profile{"default": p}, DefaultProfile: "default"}
	f := newFixtureWith(t, cfg)
	ctx := context.Background()
	first, err := f.svc.Enroll(ctx, namedWithKey(t, newKey(t), static, "sup-1", "sup-1.example"))
	if err != nil {
		t.Fatal(err)
	}
	renew := namedWithKey(t, newKey(t), "", "sup-1", "sup-1.example")
	renew.Renewal, renew.Evidence.SignerCert, renew.TransactionID = true, first.Certificate, "tx-superseded"
	var copyRes *enroll.Result
	st := &claimlessRecordsCopy{Store: f.st, copyFirst: func() {
		var cerr error
		if copyRes, cerr = f.svc.Enroll(ctx, renew); cerr != nil {
			t.Errorf("the copy: %v", cerr)
		}
	}}
	svc, err := enroll.New(st, f.auth, f.clock, slog.New(slog.DiscardHandler), cfg)
	if err != nil {
		t.Fatal(err)
	}
	res, err := svc.Enroll(ctx, renew)
	if err != nil {
		t.Fatalf("the renewal whose copy got there first: %v", err)
	}
	if copyRes == nil || copyRes.SentAgain {
		t.Fatalf("the copy was not issued first: %+v", copyRes)
	}
	if !res.SentAgain || res.Record.SerialHex != copyRes.Record.SerialHex {
		t.Fatalf("answered with %s (sent again: %v), want %s sent again", res.Record.SerialHex, res.SentAgain, copyRes.Record.SerialHex)
	}
}

// The same for copies of a renewal, SCEP's and then EST's, sent to two
// nodes on one PostgreSQL database, the renewal revoking the certificate
// it renews.
func TestRenewalCopiesAtOnceToTwoNodesGetOneCertificate(t *testing.T) {
	url := pgtest.Database(t)
	dir := t.TempDir()
	clock := pkitest.NewClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	if _, _, err := ca.LoadOrCreate(dir, ca.InitOptions{GenerateKey: testKeys.Generate}, clock); err != nil {
		t.Fatal(err)
	}
	p := pki.DefaultProfile()
	p.Name, p.RenewalWindow, p.RevokeSuperseded = "default", 1, true
	cfg := enroll.Config{StaticChallenge: static, Profiles: map[string]pki.Profile{"default": p}, DefaultProfile: "default"}
	var nodes []*enroll.Service
	var st store.Store
	for range 2 {
		auth, _, err := ca.LoadOrCreate(dir, ca.InitOptions{GenerateKey: testKeys.Generate}, clock)
		if err != nil {
			t.Fatal(err)
		}
		pg, err := postgres.Open(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pg.Close() })
		svc, err := enroll.New(pg, auth, clock, slog.New(slog.DiscardHandler), cfg)
		if err != nil {
			t.Fatal(err)
		}
		nodes, st = append(nodes, svc), pg
	}
	for round := range 3 {
		name := fmt.Sprintf("renew-nodes-%d", round)
		first, err := nodes[0].Enroll(context.Background(), namedWithKey(t, newKey(t), static, name, name+".example"))
		if err != nil {
			t.Fatal(err)
		}
		renew := namedWithKey(t, newKey(t), "", name, name+".example")
		renew.Renewal, renew.Evidence.SignerCert, renew.TransactionID = true, first.Certificate, "tx-"+name
		results, errs := sendCopies(nodes, 6, renew)
		checkOneCertificate(t, st, renew.TransactionID, renew, results, errs)
	}
	for round := range 3 {
		name := fmt.Sprintf("est-renew-nodes-%d", round)
		first, err := nodes[0].Enroll(context.Background(), namedWithKey(t, newKey(t), static, name, name+".example"))
		if err != nil {
			t.Fatal(err)
		}
		results, errs := sendCopies(nodes, 6, estRenewal(t, first, name))
		checkOneRenewal(t, st, name, first, results, errs)
	}
}

// estRenewal is an EST simplereenroll of first (the TLS client
// certificate) for a new key with its names: EST has no transaction ID.
func estRenewal(t *testing.T, first *enroll.Result, name string) enroll.Request {
	renew := namedWithKey(t, newKey(t), "", name, name+".example")
	renew.Protocol, renew.TransactionID, renew.Renewal = pki.ProtocolEST, "", true
	renew.Evidence = enroll.Evidence{TLSClientCert: first.Certificate}
	return renew
}

// checkOneRenewal: every copy of round's renewal of first was answered
// with the one renewal of it the store holds.
func checkOneRenewal(t *testing.T, st store.Store, round string, first *enroll.Result, results []*enroll.Result, errs []error) {
	t.Helper()
	renewals, err := st.RenewalsOf(context.Background(), first.Record.IssuerID, first.Record.SerialHex)
	if err != nil {
		t.Fatal(err)
	}
	if len(renewals) != 1 {
		t.Fatalf("%s: %d renewals issued for one request, want 1", round, len(renewals))
	}
	issued := 0
	for i, res := range results {
		if errs[i] != nil {
			t.Errorf("%s: copy %d: %v", round, i, errs[i])
			continue
		}
		if res.Record.SerialHex != renewals[0].SerialHex {
			t.Errorf("%s: copy %d answered with %s, want %s", round, i, res.Record.SerialHex, renewals[0].SerialHex)
		}
		if !res.SentAgain {
			issued++
		}
	}
	if issued != 1 {
		t.Errorf("%s: %d copies were answered as the issuance, want 1 (the others sent again)", round, issued)
	}
}

// Copies of one EST simplereenroll (the same client certificate, new key
// and CSR) sent at once get one certificate, every copy that one: none a
// second certificate for the key, none a refusal because the winner
// superseded the certificate they renew.
func TestESTRenewalCopiesAtOnceGetOneCertificate(t *testing.T) {
	for _, revoke := range []bool{false, true} {
		t.Run(fmt.Sprintf("revoke superseded: %v", revoke), func(t *testing.T) {
			p := pki.DefaultProfile()
			p.Name, p.RenewalWindow, p.RevokeSuperseded = "default", 1, revoke
			f := newFixtureWith(t, enroll.Config{Profiles: map[string]pki.Profile{"default": p}, DefaultProfile: "default"})
			for round := range 3 {
				name := fmt.Sprintf("est-renew-%d", round)
				first, err := f.svc.Enroll(context.Background(), namedWithKey(t, newKey(t), static, name, name+".example"))
				if err != nil {
					t.Fatal(err)
				}
				results, errs := sendCopies([]*enroll.Service{f.svc}, 8, estRenewal(t, first, name))
				checkOneRenewal(t, f.st, name, first, results, errs)
			}
		})
	}
}

// When the EST renewal copy that signs fails to record its certificate
// (the store unavailable: it may have recorded it), the other copies are
// told to retry (503) and never sign one of their own; once the claim
// lapses the renewal goes through.
func TestESTRenewalCopiesAtOnceWhenTheIssuanceFails(t *testing.T) {
	p := pki.DefaultProfile()
	p.Name, p.RenewalWindow = "default", 1
	cfg := enroll.Config{StaticChallenge: static, Profiles: map[string]pki.Profile{"default": p}, DefaultProfile: "default"}
	f := newFixtureWith(t, cfg)
	st := &failingRecord{Store: f.st}
	svc, err := enroll.New(st, f.auth, f.clock, slog.New(slog.DiscardHandler), cfg)
	if err != nil {
		t.Fatal(err)
	}
	svc.SetClaimWait(300 * time.Millisecond)
	first, err := svc.Enroll(context.Background(), namedWithKey(t, newKey(t), static, "est-fails", "est-fails.example"))
	if err != nil {
		t.Fatal(err)
	}
	unavailable := fmt.Errorf("record: %w", store.ErrUnavailable)
	st.err.Store(&unavailable)
	renew := estRenewal(t, first, "est-fails")
	_, errs := sendCopies([]*enroll.Service{svc}, 4, renew)
	if n := st.tries.Load(); n != 1 {
		t.Errorf("%d copies signed and tried to record, want 1", n)
	}
	for i, err := range errs {
		if err == nil {
			t.Errorf("copy %d succeeded", i)
		} else if !errors.Is(err, store.ErrUnavailable) && pki.ErrorCode(err) != pki.EUnavailable {
			t.Errorf("copy %d: %v, want the failure or a retry (503)", i, err)
		}
	}
	st.err.Store(nil)
	if _, err := svc.Enroll(context.Background(), renew); pki.ErrorCode(err) != pki.EUnavailable {
		t.Errorf("the next try while the claim holds: %v, want a retry (503)", err)
	}
	f.clock.Advance(5 * time.Minute)
	res, err := svc.Enroll(context.Background(), renew)
	if err != nil || res.SentAgain {
		t.Fatalf("the next try: %+v, %v; want a certificate", res, err)
	}
}
