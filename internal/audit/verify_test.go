package audit_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/audit"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest"
	"github.com/scepter/scepter/internal/pkitest/fixture"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/sqlite"
	"github.com/scepter/scepter/internal/store/sqlite/sqlitetest"
)

// trail writes a trail of n events through the store and returns the path
// of its database, closed.
func trail(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "scepter.db")
	sqlitetest.Create(t, path) // migrated once per binary, not per test
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := 1; i <= n; i++ {
		ev := pki.AuditEvent{Time: t0.Add(time.Duration(i) * time.Minute), Type: pki.EventIssued, Actor: "scep:192.0.2.1",
			SerialHex: fmt.Sprintf("%x", 0x1000+i), Subject: fmt.Sprintf("CN=dev-%d", i), Outcome: "success"}
		if err := st.AppendAudit(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// tamper runs SQL on the database behind the store's back, as someone with
// the file would.
func tamper(t *testing.T, path string, stmts ...string) {
	t.Helper()
	// Waits, as any other writer must, while the store writes: its search
	// indexer does so in the background after an issuance.
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func verify(t *testing.T, path string) audit.Report {
	t.Helper()
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rep, err := audit.Verify(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestVerify(t *testing.T) {
	const n = 12
	if rep := verify(t, trail(t, 0)); !rep.OK() || rep.Checked != 0 {
		t.Errorf("empty trail: %+v", rep)
	}
	if rep := verify(t, trail(t, n)); !rep.OK() || rep.Checked != n || rep.LastID != n {
		t.Errorf("intact trail: %+v, problem %v", rep, rep.Problem)
	}
	cases := []struct {
		name   string
		sql    []string
		wantID int64  // the record named (0: the end of the trail)
		want   string // in the problem's text
	}{
		{"edited detail", []string{`UPDATE audit_events SET detail = 'nothing to see' WHERE id = 5`}, 5, "edited"},
		{"edited actor", []string{`UPDATE audit_events SET actor = 'cli:someone-else' WHERE id = 1`}, 1, "edited"},
		{"edited time", []string{`UPDATE audit_events SET time = time + 1 WHERE id = 9`}, 9, "edited"},
		{"deleted in the middle", []string{`DELETE FROM audit_events WHERE id = 7`}, 8, "removed"},
		{"deleted the first", []string{`DELETE FROM audit_events WHERE id = 1`}, 2, "removed"},
		{"deleted the newest", []string{`DELETE FROM audit_events WHERE id = 12`}, 0, "removed"},
		{"inserted in a gap", []string{`DELETE FROM audit_events WHERE id = 6`,
			`INSERT INTO audit_events (id, time, type, actor, prev_hash, hash) SELECT 6, time, 'certificate.revoked', 'x', prev_hash, hash FROM audit_events WHERE id = 5`}, 6, "edited"},
		{"inserted without a hash", []string{`INSERT INTO audit_events (id, time, type) VALUES (13, 0, 'certificate.issued')`}, 13, "outside scepter"},
		{"inserted after the newest, chained", []string{`INSERT INTO audit_events (id, time, type, prev_hash, hash) SELECT 13, time, type, hash, hash FROM audit_events WHERE id = 12`}, 13, ""},
		{"reordered (contents swapped)", []string{
			`UPDATE audit_events SET id = -3 WHERE id = 3`, `UPDATE audit_events SET id = 3 WHERE id = 4`, `UPDATE audit_events SET id = 4 WHERE id = -3`}, 3, "edited"},
		{"inserted with id 0", []string{`INSERT INTO audit_events (id, time, type, actor, prev_hash, hash) SELECT 0, time, 'certificate.revoked', 'console:mallory', prev_hash, hash FROM audit_events WHERE id = 1`}, 0, "outside scepter"},
		{"inserted with a negative id", []string{`INSERT INTO audit_events (id, time, type, actor, prev_hash, hash) SELECT -5, time, 'certificate.revoked', 'console:mallory', prev_hash, hash FROM audit_events WHERE id = 12`}, -5, "outside scepter"},
		{"inserted with the lowest id there is", []string{`INSERT INTO audit_events (id, time, type, actor) VALUES (-9223372036854775808, 1764000000000000000, 'certificate.revoked', 'console:mallory')`}, math.MinInt64, "outside scepter"},
		{"inserted with a negative id, no hash", []string{`INSERT INTO audit_events (id, time, type) VALUES (-1, 0, 'certificate.revoked')`}, -1, "outside scepter"},
		{"head's hash replaced", []string{`UPDATE audit_head SET last_hash = X'00'`}, 12, "certificate.issued at 2030-01-02T03:16:05Z): the newest record is not"},
		// Ids changed, hashes untouched: each record still chains to the
		// one before, and is named as renumbered, not as the trail cut
		// short or a record edited or inserted.
		{"renumbered past the head", []string{`UPDATE audit_events SET id = id + 100 WHERE id >= 10`}, 110,
			"the chain expected record 10 after record 9, but found id 110: this is record 10 renumbered"},
		{"renumbered within the head", []string{`UPDATE audit_events SET id = -id WHERE id >= 10`, `UPDATE audit_events SET id = 1 - id WHERE id < 0`}, 11,
			"the chain expected record 10 after record 9, but found id 11"},
		{"renumbered from the start", []string{`UPDATE audit_events SET id = id + 1000`}, 1001,
			"the chain expected record 1 first, but found id 1001"},
		{"renumbered below 1", []string{`UPDATE audit_events SET id = id - 100`}, -99,
			"the chain expected record 1 first, but found id -99"},
		{"the newest renumbered", []string{`UPDATE audit_events SET id = id + 100 WHERE id = 12`}, 112,
			"the chain expected record 12 after record 11, but found id 112"},
		// One record moved past the head, the rest in place: the gap it
		// leaves is no removal, and the record is named where it is.
		{"one renumbered past the head", []string{`UPDATE audit_events SET id = id + 1000 WHERE id = 5`}, 1005,
			"the chain expected record 5 after record 4, but found id 1005: this is record 5 renumbered"},
		{"the first renumbered past the head", []string{`UPDATE audit_events SET id = id + 1000 WHERE id = 1`}, 1001,
			"the chain expected record 1 first, but found id 1001: this is record 1 renumbered"},
		{"one renumbered past a later gap", []string{`UPDATE audit_events SET id = id + 1000 WHERE id = 5`, `DELETE FROM audit_events WHERE id = 6`}, 1005,
			"this is record 5 renumbered"},
		{"one renumbered past the head, another removed after it", []string{`UPDATE audit_events SET id = id + 1000 WHERE id = 5`,
			`DELETE FROM audit_events WHERE id = 3`}, 4, "record 3 is missing before it: removed"},
		// Deleting the head once had the next open reseal the whole trail,
		// the edit with it.
		{"head deleted", []string{`DELETE FROM audit_head`}, 1, "head is missing"},
		{"edited, then the head deleted", []string{`UPDATE audit_events SET actor = 'cli:nobody', reason = 'FORGED' WHERE id = 10`,
			`DELETE FROM audit_head`}, 1, "head is missing"},
		{"everything deleted", []string{`DELETE FROM audit_events`}, 0, "removed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := trail(t, n)
			tamper(t, path, c.sql...)
			rep := verify(t, path)
			if rep.OK() {
				t.Fatalf("tampering not found: %+v", rep)
			}
			msg := rep.Problem.Error()
			if rep.Problem.ID != c.wantID && !(c.wantID == 0 && c.want == "") {
				t.Errorf("names record %d (%s), want %d", rep.Problem.ID, msg, c.wantID)
			}
			if !strings.Contains(msg, c.want) {
				t.Errorf("problem %q does not say %q", msg, c.want)
			}
			t.Logf("%s: %s", c.name, msg)
		})
	}
}

// The chain is not keyed: whoever rewrites its end and the head with it is
// not caught by the chain alone. This pins that documented limit (signed,
// published checkpoints of the head are on the roadmap), so that it is
// never mistaken for a guarantee.
func TestTruncationWithForgedHeadIsTheKnownLimit(t *testing.T) {
	path := trail(t, 5)
	tamper(t, path, `DELETE FROM audit_events WHERE id = 5`,
		`UPDATE audit_head SET last_id = 4, count = 4, last_hash = (SELECT hash FROM audit_events WHERE id = 4)`)
	if rep := verify(t, path); !rep.OK() || rep.Checked != 4 {
		t.Errorf("%+v", rep)
	}
}

// Records written before the trail was a chain are sealed into it by the
// first start of the new version, and verify.
func TestSealsTheOldTrail(t *testing.T) {
	path := trail(t, 5)
	tamper(t, path, `UPDATE audit_events SET prev_hash = NULL, hash = NULL`, `DELETE FROM audit_head`)
	if rep := verify(t, path); !rep.OK() || rep.Checked != 5 {
		t.Errorf("after sealing: %+v, %v", rep, rep.Problem)
	}
	// Sealing happens once: a record slipped in later without a hash is
	// not blessed by the next start.
	tamper(t, path, `INSERT INTO audit_events (id, time, type) VALUES (6, 0, 'x')`)
	if rep := verify(t, path); rep.OK() || rep.Problem.ID != 6 {
		t.Errorf("a hashless record after sealing: %+v", rep)
	}
}

// Fail closed: when the audit trail cannot be written, the change it would
// record does not happen: no certificate without its event, no revocation.
func TestAuditFailureFailsTheChange(t *testing.T) {
	ctx := context.Background()
	p := fixture.New(t, fixture.Options{})
	cert, _ := p.Issue(t, "before")
	tamper(t, filepath.Join(p.Dir, "scepter.db"),
		`CREATE TRIGGER audit_down BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'audit trail unavailable'); END`)
	before, _, err := p.Store.ListCertificates(ctx, store.CertFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Service.Enroll(ctx, p.Request(t, "during").Request); err == nil {
		t.Fatal("issued while the audit trail was down")
	}
	after, _, err := p.Store.ListCertificates(ctx, store.CertFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Errorf("%d certificates recorded without their audit event", len(after)-len(before))
	}
	issuer := p.Issuer()
	if _, _, err := p.Store.RevokeCertificate(ctx, issuer.ID, cert.SerialNumber.Text(16), 1, p.Clock.Now(),
		pki.AuditEvent{Type: pki.EventRevoked}); err == nil {
		t.Fatal("revoked while the audit trail was down")
	}
	if c, _ := p.Store.Certificate(ctx, issuer.ID, cert.SerialNumber.Text(16)); c.Status != pki.StatusValid {
		t.Error("the revocation happened without its audit event")
	}
	if st, _ := p.Store.RevocationState(ctx); st[issuer.ID] != 0 {
		t.Error("the revocation state moved without the revocation")
	}
}

// A server does not start on a trail whose head was deleted under chained
// records, or with its records beside certificates; a fresh trail, or one
// that holds only records from before the chain, is fine.
func TestHeadIntact(t *testing.T) {
	ctx := context.Background()
	wipe := []string{`DELETE FROM audit_events`, `DELETE FROM audit_head`}
	for _, c := range []struct {
		name string
		n    int
		// issued is how many certificates are recorded (each with its
		// event) after the n records.
		issued int
		sql    []string
		ok     bool
	}{
		{"intact", 5, 0, nil, true},
		{"empty", 0, 0, nil, true},
		{"intact with certificates", 2, 2, nil, true},
		{"head deleted", 5, 0, []string{`DELETE FROM audit_head`}, false},
		{"record after the head", 5, 0, []string{`INSERT INTO audit_events (time, type, actor, outcome, reason) VALUES (0, 'certificate.revoked', 'x', 'success', 'x')`}, false},
		{"record after an empty trail's head", 0, 0, []string{`INSERT INTO audit_events (time, type, actor, outcome, reason) VALUES (0, 'certificate.revoked', 'x', 'success', 'x')`}, false},
		{"records and head deleted beside certificates", 3, 2, wipe, false},
		{"records and head deleted beside a certificate, no other record", 0, 1, wipe, false},
		{"head set back to the start and records deleted beside certificates", 3, 2, []string{`DELETE FROM audit_events`,
			`UPDATE audit_head SET last_id = 0, last_hash = X'` + fmt.Sprintf("%x", pki.AuditGenesis) + `', count = 0`}, false},
		// Nothing to chain on is lost: the head names the last record,
		// and CheckTail reports the records gone.
		{"records deleted, head kept, beside certificates", 3, 2, []string{`DELETE FROM audit_events`}, true},
		{"records and head deleted, no certificate", 5, 0, wipe, true},
	} {
		path := trail(t, c.n)
		issue(t, path, c.issued)
		tamper(t, path, c.sql...)
		st, err := sqlite.Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		err = audit.HeadIntact(ctx, st)
		st.Close()
		if (err == nil) != c.ok {
			t.Errorf("%s: %v, want ok %v", c.name, err, c.ok)
		}
		// Refused as every append would be, in the words the edges use.
		if err != nil && (!errors.Is(err, store.ErrAuditTampered) || !strings.HasSuffix(err.Error(), store.AuditTamperedMessage)) {
			t.Errorf("%s: %v, want ErrAuditTampered ending in its message", c.name, err)
		}
		if strings.Contains(c.name, "deleted beside") && err != nil && !strings.Contains(err.Error(), audit.WipedTrailFound) {
			t.Errorf("%s: %v, want it to say the records were deleted beside the certificates", c.name, err)
		}
	}
}

// issue records n certificates, each with its event, in the store at path
// (closed again), as enrollments would.
func issue(t *testing.T, path string, n int) {
	t.Helper()
	if n == 0 {
		return
	}
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i := range n {
		if err := st.RecordIssuance(context.Background(), issuanceOf(fmt.Sprintf("%x", 0x2000+i))); err != nil {
			t.Fatal(err)
		}
	}
}

// issuanceOf is a certificate's issuance with its event, as an enrollment
// records it.
func issuanceOf(serial string) store.Issuance {
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	keyHash := sha256.Sum256([]byte(serial))
	c := pki.Certificate{SerialHex: serial, IssuerID: "issuer-a", Issuer: "CN=Test CA", Subject: "CN=dev-" + serial,
		NotBefore: t0, NotAfter: t0.Add(365 * 24 * time.Hour), Status: pki.StatusValid, Profile: "default",
		Protocol: pki.ProtocolSCEP, Source: pki.SourceIssued, KeyType: "p256", CreatedAt: t0,
		DER: []byte{0x30, 0x03, 'd', 'e', 'r'}, TransactionID: "tx-" + serial}
	return store.Issuance{Certificate: c, Now: t0, KeyHash: keyHash[:],
		Events: []pki.AuditEvent{{Time: t0, Type: pki.EventIssued, Actor: "scep:192.0.2.1", SerialHex: serial,
			IssuerID: c.IssuerID, Subject: c.Subject, Outcome: "success"}}}
}

// A clock stepped back between two records is not tampering: the trail
// verifies, and the report names where the times go backwards.
func TestVerifyReportsTimeSteppedBack(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "scepter.db")
	sqlitetest.Create(t, path)
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := pkitest.NewClock(t0)
	// The clock moves by each step before its record is written; a
	// negative step sets it back.
	// The last two: concurrent writers land out of time order by a
	// moment (within TimeStepTolerance), which is no step of a clock.
	steps := []time.Duration{0, time.Minute, time.Minute, -90 * time.Second, time.Minute, -time.Hour, 0, time.Minute, -2 * time.Second}
	for i, d := range steps {
		clock.Advance(d)
		ev := pki.AuditEvent{Time: clock.Now(), Type: pki.EventIssued, Actor: "scep:192.0.2.1", SerialHex: fmt.Sprintf("%x", i+1)}
		if err := st.AppendAudit(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	rep := verify(t, path)
	if !rep.OK() || rep.Checked != int64(len(steps)) {
		t.Fatalf("a clock stepped back fails the trail: %+v, %v", rep, rep.Problem)
	}
	want := []audit.TimeStep{
		{PrevID: 3, PrevTime: t0.Add(2 * time.Minute), ID: 4, Time: t0.Add(30 * time.Second)},
		{PrevID: 5, PrevTime: t0.Add(90 * time.Second), ID: 6, Time: t0.Add(-58*time.Minute - 30*time.Second)},
	}
	if len(rep.TimeSteps) != len(want) {
		t.Fatalf("time steps %v, want %v", rep.TimeSteps, want)
	}
	for i, w := range want {
		got := rep.TimeSteps[i]
		if got.PrevID != w.PrevID || got.ID != w.ID || !got.PrevTime.Equal(w.PrevTime) || !got.Time.Equal(w.Time) {
			t.Errorf("time step %d: %v, want %v", i, got, w)
		}
	}
	if s := rep.TimeSteps[0].String(); !strings.Contains(s, "record 4 (2030-01-02T03:04:35Z)") || !strings.Contains(s, "record 3") {
		t.Errorf("time step reads %q", s)
	}
	// Records 6 and 7 share a time: no step. Nor has an ordered trail.
	if rep := verify(t, trail(t, 3)); len(rep.TimeSteps) != 0 {
		t.Errorf("an ordered trail reports steps: %v", rep.TimeSteps)
	}
}

// chain is a trail in memory, for what SQL alone cannot forge: records
// whose hashes were recomputed.
type chain struct {
	events []pki.AuditEvent
	head   store.AuditHead
}

func (c chain) AuditChain(_ context.Context, afterID int64, limit int) ([]pki.AuditEvent, error) {
	var out []pki.AuditEvent
	for _, e := range c.events {
		if (e.ID > afterID || afterID == math.MinInt64) && len(out) < limit {
			out = append(out, e)
		}
	}
	return out, nil
}

func (c chain) AuditHead(context.Context) (store.AuditHead, error) { return c.head, nil }

// sealed chains events with the given ids as scepter would, whatever the ids.
func sealed(ids ...int64) chain {
	c := chain{head: store.AuditHead{LastHash: pki.AuditGenesis}}
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for i, id := range ids {
		e := pki.AuditEvent{ID: id, Time: t0.Add(time.Duration(i) * time.Minute), Type: pki.EventIssued, PrevHash: c.head.LastHash}
		e.Hash = pki.AuditChainHash(e.PrevHash, e)
		c.events = append(c.events, e)
		c.head = store.AuditHead{LastID: id, LastHash: e.Hash, Count: c.head.Count + 1}
	}
	return c
}

// A trail renumbered and resealed (every hash recomputed for the new ids)
// is named as such: the gap in its ids hides no removed record.
func TestVerifyRenumberedAndResealed(t *testing.T) {
	rep, err := audit.Verify(context.Background(), sealed(1, 2, 4, 5))
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || rep.Problem.ID != 4 ||
		!strings.Contains(rep.Problem.What, "the chain expected record 3 after record 2, but found id 4") ||
		!strings.Contains(rep.Problem.What, "renumbered and its hashes recomputed") {
		t.Errorf("%+v, %v", rep, rep.Problem)
	}
	// One record moved past the head and resealed for its new id: named
	// there, not taken for a removal.
	moved := sealed(1, 2, 3, 4, 5)
	third := moved.events[2]
	third.ID = 103
	third.Hash = pki.AuditChainHash(third.PrevHash, third)
	moved.events = append(slices.Delete(moved.events, 2, 3), third)
	rep, err = audit.Verify(context.Background(), moved)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || rep.Problem.ID != 103 ||
		!strings.Contains(rep.Problem.What, "the chain expected record 3 after record 2, but found id 103") {
		t.Errorf("one resealed past the head: %+v, %v", rep, rep.Problem)
	}
	if rep, err := audit.Verify(context.Background(), sealed(1, 2, 3)); err != nil || !rep.OK() {
		t.Errorf("an intact trail in memory: %+v, %v, %v", rep, rep.Problem, err)
	}
}

// interleaved is a store handle whose reads of the trail let another
// writer in: write runs once, right after read number after returns.
type interleaved struct {
	audit.Trail
	after int
	write func()
	reads int
}

func (c *interleaved) read() {
	c.reads++
	if c.reads == c.after {
		c.write()
	}
}

func (c *interleaved) AuditChain(ctx context.Context, afterID int64, limit int) ([]pki.AuditEvent, error) {
	defer c.read()
	return c.Trail.AuditChain(ctx, afterID, limit)
}

func (c *interleaved) AuditHead(ctx context.Context) (store.AuditHead, error) {
	defer c.read()
	return c.Trail.AuditHead(ctx)
}

func (c *interleaved) ListCertificates(ctx context.Context, f store.CertFilter) ([]pki.Certificate, string, error) {
	defer c.read()
	return c.Trail.ListCertificates(ctx, f)
}

// A server checking the head at its start while a CLI command, on another
// handle of the same SQLite file, writes the trail's first record (and
// its head, in one transaction) between the check's reads: the check must
// not take the fresh record for a trail whose head was removed, nor the
// store's first certificate, recorded with it, for one beside a trail
// wiped, and the record must stay in a trail that verifies.
func TestHeadIntactWhileTheFirstRecordIsWritten(t *testing.T) {
	ctx := context.Background()
	writes := []struct {
		name  string
		write func(st *sqlite.Store) error
	}{
		{"event", func(st *sqlite.Store) error {
			return st.AppendAudit(ctx, pki.AuditEvent{Time: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), Type: pki.EventChallengeCreated, Actor: "cli:root"})
		}},
		{"certificate", func(st *sqlite.Store) error { return st.RecordIssuance(ctx, issuanceOf("c0")) }},
	}
	for _, w := range writes {
		for _, after := range []int{1, 2, 3, 4} {
			t.Run(fmt.Sprintf("%s after read %d", w.name, after), func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "scepter.db")
				sqlitetest.Create(t, path)
				server, err := sqlite.Open(ctx, path)
				if err != nil {
					t.Fatal(err)
				}
				defer server.Close()
				cli, err := sqlite.Open(ctx, path)
				if err != nil {
					t.Fatal(err)
				}
				defer cli.Close()
				c := &interleaved{Trail: server, after: after, write: func() {
					if err := w.write(cli); err != nil {
						t.Error(err)
					}
				}}
				if err := audit.HeadIntact(ctx, c); err != nil {
					t.Errorf("false tampering: %v", err)
				}
				if c.reads < after { // the check was done before the write
					c.write()
				}
				rep, err := audit.Verify(ctx, server)
				if err != nil {
					t.Fatal(err)
				}
				if !rep.OK() || rep.Checked != 1 {
					t.Errorf("after the check: %+v, %v", rep, rep.Problem)
				}
			})
		}
	}
}

// Two writers on their own handles of one new SQLite file (a server and
// a CLI command) create the head and append at once, while a third
// checks the head over and over: no check reports tampering, and every
// record is in a trail that verifies.
func TestHeadIntactWithConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "scepter.db")
	sqlitetest.Create(t, path)
	checker, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer checker.Close()
	const writers, each = 2, 25
	var wg sync.WaitGroup
	done := make(chan struct{})
	for w := range writers {
		st, err := sqlite.Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				ev := pki.AuditEvent{Time: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), Type: pki.EventChallengeCreated,
					Actor: fmt.Sprintf("cli:writer-%d", w), Detail: fmt.Sprint(i)}
				if err := st.AppendAudit(ctx, ev); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()
	for checking := true; checking; {
		select {
		case <-done:
			checking = false
		default:
		}
		if err := audit.HeadIntact(ctx, checker); err != nil {
			t.Fatalf("false tampering: %v", err)
		}
	}
	rep, err := audit.Verify(ctx, checker)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Checked != writers*each {
		t.Errorf("%+v, %v", rep, rep.Problem)
	}
}

// CheckTail finds what Verify finds among the newest records, and that the
// newest is the head, without walking the rest.
func TestCheckTail(t *testing.T) {
	ctx := context.Background()
	const n, tail = 12, 5
	for _, c := range []struct {
		name   string
		sql    []string
		wantID int64 // -1: no problem
		want   string
	}{
		{"intact", nil, -1, ""},
		{"newest record edited", []string{`UPDATE audit_events SET reason = 'x' WHERE id = 12`}, 12, "edited"},
		{"record near the tail edited", []string{`UPDATE audit_events SET reason = 'x' WHERE id = 10`}, 10, "edited"},
		{"oldest record of the tail edited", []string{`UPDATE audit_events SET reason = 'x' WHERE id = 8`}, 8, "edited"},
		{"record before the tail edited: left to audit verify", []string{`UPDATE audit_events SET reason = 'x' WHERE id = 3`}, -1, ""},
		{"record in the tail removed", []string{`DELETE FROM audit_events WHERE id = 10`}, 11, "missing before it"},
		{"newest record removed", []string{`DELETE FROM audit_events WHERE id = 12`}, 0, "newest records were removed"},
		{"the whole tail removed", []string{`DELETE FROM audit_events WHERE id > 6`}, 0, "newest records were removed"},
		{"head's hash replaced", []string{`UPDATE audit_head SET last_hash = X'00'`}, 12, "replaced"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := trail(t, n)
			tamper(t, path, c.sql...)
			st, err := sqlite.Open(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			p, err := audit.CheckTail(ctx, st, tail)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case c.wantID < 0 && p != nil:
				t.Errorf("problem %v, want none", p)
			case c.wantID >= 0 && p == nil:
				t.Error("no problem found")
			case p != nil && (p.ID != c.wantID || !strings.Contains(p.Error(), c.want)):
				t.Errorf("problem %v, want record %d and %q", p, c.wantID, c.want)
			}
		})
	}
	// An empty trail has nothing to check.
	st, err := sqlite.Open(ctx, trail(t, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if p, err := audit.CheckTail(ctx, st, tail); p != nil || err != nil {
		t.Errorf("empty trail: %v, %v", p, err)
	}
}

// CheckStart finds a trail wiped, or cut and chained again from the start,
// which the chain alone passes: it takes no hash.
func TestCheckStart(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	later := pki.AuditEvent{Time: t0.Add(24 * time.Hour), Type: pki.EventServerStarted, Actor: "system", Outcome: "success"}
	for _, c := range []struct {
		name string
		// first is the type of the first record written; certs, whether
		// a certificate is recorded after it.
		first  string
		certs  bool
		sql    []string
		append bool // append `later` through the store after the SQL
		wantID int64
		want   string // "": no problem
	}{
		{"a store's trail", pki.EventCAInitialized, true, nil, false, 0, ""},
		{"a store first set up under an existing CA", pki.EventCAPublished, true, nil, false, 0, ""},
		{"CLI records before any certificate", pki.EventChallengeCreated, true, nil, false, 0, ""},
		{"empty, no certificates", "", false, nil, false, 0, ""},
		{"wiped", pki.EventCAInitialized, true, []string{`DELETE FROM audit_events`, `DELETE FROM audit_head`}, false, 0, "the trail is empty, but the store holds certificates"},
		{"wiped, no certificates", pki.EventCAInitialized, false, []string{`DELETE FROM audit_events`, `DELETE FROM audit_head`}, false, 0, ""},
		// With the head deleted too, the store refuses to write on
		// (storetest RunAuditTampering); set back to the start, it cannot
		// tell.
		{"wiped and written on", pki.EventCAInitialized, true, []string{`DELETE FROM audit_events`,
			`UPDATE audit_head SET last_id = 0, count = 0, last_hash = X'` + fmt.Sprintf("%x", pki.AuditGenesis) + `'`}, true, 1, "started again"},
		{"tail cut with the head set back: the known limit", pki.EventCAInitialized, true, []string{`DELETE FROM audit_events WHERE id = 2`,
			`UPDATE audit_head SET last_id = 1, count = 1, last_hash = (SELECT hash FROM audit_events WHERE id = 1)`}, false, 0, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "scepter.db")
			sqlitetest.Create(t, path)
			st, err := sqlite.Open(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			if c.first != "" {
				if err := st.AppendAudit(ctx, pki.AuditEvent{Time: t0, Type: c.first, Actor: "system", Outcome: "success"}); err != nil {
					t.Fatal(err)
				}
			}
			if c.certs {
				cert := pki.Certificate{SerialHex: "01", IssuerID: "issuer", Subject: "CN=dev", NotBefore: t0, NotAfter: t0.Add(time.Hour),
					Status: pki.StatusValid, Profile: "default", Protocol: pki.ProtocolSCEP, Source: pki.SourceIssued, CreatedAt: t0.Add(time.Second), DER: []byte{0x30, 0}}
				if err := st.RecordIssuance(ctx, store.Issuance{Certificate: cert, Now: cert.CreatedAt, Events: []pki.AuditEvent{{Type: pki.EventIssued, SerialHex: "01"}}}); err != nil {
					t.Fatal(err)
				}
			}
			st.Close()
			tamper(t, path, c.sql...)
			if st, err = sqlite.Open(ctx, path); err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if c.append {
				if err := st.AppendAudit(ctx, later); err != nil {
					t.Fatal(err)
				}
			}
			rep, err := audit.Verify(ctx, st)
			if err != nil || !rep.OK() {
				t.Fatalf("the chain alone: %+v, %v; want it to pass", rep.Problem, err)
			}
			p, err := audit.CheckStart(ctx, st, rep)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case c.want == "" && p != nil:
				t.Errorf("problem %v, want none", p)
			case c.want != "" && p == nil:
				t.Errorf("no problem, want %q", c.want)
			case p != nil && (p.ID != c.wantID || !strings.Contains(p.Error(), c.want)):
				t.Errorf("problem %v, want record %d and %q", p, c.wantID, c.want)
			}
			// VerifyTrail (the CLI's, the console's and the API's) says the same.
			trail, err := audit.VerifyTrail(ctx, st)
			if err != nil || (trail.Problem == nil) != (p == nil) || p != nil && trail.Problem.Error() != p.Error() {
				t.Errorf("VerifyTrail = %+v, %v; want the problem %v", trail.Problem, err, p)
			}
		})
	}
}
