package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest"
	"github.com/scepter/scepter/internal/pkitest/fixture"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/postgres"
	"github.com/scepter/scepter/internal/store/postgres/pgtest"
	"github.com/scepter/scepter/internal/store/sqlite"
	"github.com/scepter/scepter/internal/store/sqlite/sqlitetest"
)

// raNodeStores runs fn on SQLite (one database that the two data
// directories of the test share, as Go lets a test do) and on PostgreSQL
// (when $SCEPTER_TEST_POSTGRES_URL names a server); open opens the store
// once more, a node's connection.
func raNodeStores(t *testing.T, fn func(t *testing.T, open func(t *testing.T) store.Store)) {
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "scepter.db")
		sqlitetest.Create(t, path)
		fn(t, func(t *testing.T) store.Store {
			st, err := sqlite.Open(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		})
	})
	t.Run("postgres", func(t *testing.T) {
		url := pgtest.Database(t)
		fn(t, func(t *testing.T) store.Store {
			st, err := postgres.Open(context.Background(), url)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		})
	})
}

// countingKeys counts the keys a node makes.
type countingKeys struct{ n atomic.Int32 }

func (c *countingKeys) generate(keyType string) (crypto.Signer, error) {
	c.n.Add(1)
	return testKeys.Generate(keyType)
}

// raCertOf reads dir's RA in service.
func raCertOf(t *testing.T, dir string) *x509.Certificate {
	t.Helper()
	c, err := readCert(filepath.Join(dir, "ca", ca.RACertFile))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// untouchedRA fails t unless dir still serves want and holds no retired
// RA and no renewal under way.
func untouchedRA(t *testing.T, dir string, want *x509.Certificate) {
	t.Helper()
	if !raCertOf(t, dir).Equal(want) {
		t.Errorf("%s: the RA in service changed", dir)
	}
	if _, err := os.Stat(filepath.Join(dir, "ca", ca.RetiredRADir)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s: a retired RA was made: %v", dir, err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "ca", ".ra-new-*")); len(left) != 0 {
		t.Errorf("%s: left %v", dir, left)
	}
}

// renewals are the certificate.renewed events of the store.
func renewals(t *testing.T, st store.Store) []pki.AuditEvent {
	t.Helper()
	evs, err := st.ListAudit(context.Background(), store.AuditFilter{Type: pki.EventRenewed, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// `ca renew-ra` on node B, which lacks the RA node A renewed, is refused
// with nothing made, naming that RA and how to bring it; it used to make a
// second new RA, which made A not ready and left A's valid and unused.
// Once B has A's RA, B renews. A renewal within the backdate hour of the
// CA's start, whose RA certificates both start with the issuing CA, counts
// too.
func TestCARenewRARefusedOnANodeLackingTheRenewedRA(t *testing.T) {
	raNodeStores(t, func(t *testing.T, open func(t *testing.T) store.Store) {
		ctx := context.Background()
		clock := pkitest.NewClock(fixture.Start)
		dirA := t.TempDir()
		if _, _, err := ca.LoadOrCreate(dirA, ca.InitOptions{GenerateKey: testKeys.Generate}, clock); err != nil {
			t.Fatal(err)
		}
		dirB := copyCADir(t, dirA)
		before := raCertOf(t, dirB)
		stA, stB := open(t), open(t)

		clock.Advance(10 * time.Minute)
		_, renewedA, err := renewRA(ctx, stA, dirA, ca.RenewRAOptions{GenerateKey: testKeys.Generate}, clock, "node-a cli:test", nil)
		if err != nil {
			t.Fatal(err)
		}
		var keysB countingKeys
		_, _, err = renewRA(ctx, stB, dirB, ca.RenewRAOptions{GenerateKey: keysB.generate}, clock, "node-b cli:test", nil)
		serial := pki.SerialText(renewedA.Cert.SerialNumber)
		if !errors.Is(err, errRARenewedElsewhere) || !strings.Contains(err.Error(), serial) || !strings.Contains(err.Error(), "node-a cli:test") ||
			!strings.Contains(err.Error(), "'scepter ca import-keys' here") || !strings.Contains(err.Error(), "nothing was renewed") {
			t.Fatalf("renew-ra on node B: %v, want a refusal naming A's RA %s and how to bring it", err, serial)
		}
		if n := keysB.n.Load(); n != 0 {
			t.Errorf("the refused renewal made %d keys", n)
		}
		untouchedRA(t, dirB, before)
		if evs := renewals(t, stB); len(evs) != 1 {
			t.Errorf("%d renewals recorded, want node A's: %+v", len(evs), evs)
		}

		// B brings A's RA (what import-keys writes), then renews.
		for _, name := range []string{ca.RAKeyFile, ca.RACertFile} {
			data, err := os.ReadFile(filepath.Join(dirA, "ca", name))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dirB, "ca", name), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.CopyFS(filepath.Join(dirB, "ca", ca.RetiredRADir), os.DirFS(filepath.Join(dirA, "ca", ca.RetiredRADir))); err != nil {
			t.Fatal(err)
		}
		filepath.WalkDir(filepath.Join(dirB, "ca", ca.RetiredRADir), func(path string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				err = os.Chmod(path, 0o600)
			}
			return err
		})
		clock.Advance(10 * time.Minute)
		old, _, err := renewRA(ctx, stB, dirB, ca.RenewRAOptions{GenerateKey: testKeys.Generate}, clock, "node-b cli:test", nil)
		if err != nil {
			t.Fatalf("renew-ra on node B with A's RA: %v", err)
		}
		if !old.Cert.Equal(renewedA.Cert) {
			t.Errorf("node B's renewal replaced %s, want A's %s", pki.SerialText(old.Cert.SerialNumber), serial)
		}
	})
}

// The same through the command, on PostgreSQL: exit status 1, and the
// refusal on stderr's error names the RA.
func TestCARenewRACommandRefusedOnANodeLackingTheRenewedRA(t *testing.T) {
	url := pgtest.Database(t)
	st, err := postgres.Open(context.Background(), url) // migrates it
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	dirA, _ := caDataDir(t, ca.InitOptions{})
	dirB := copyCADir(t, dirA)
	before := raCertOf(t, dirB)
	renew := func(dir string) (string, error) {
		e, out, _ := testEnv(nil)
		err := run(context.Background(), e, []string{"ca", "renew-ra", "--validity", "26280h", "--data-dir", dir, "--store", url})
		return out.String(), err
	}
	if _, err := renew(dirA); err != nil {
		t.Fatal(err)
	}
	renewedA := raCertOf(t, dirA)
	out, err := renew(dirB)
	if exitCode(err) != 1 || !errors.Is(err, errRARenewedElsewhere) || !strings.Contains(err.Error(), pki.SerialText(renewedA.SerialNumber)) {
		t.Fatalf("renew-ra on node B: exit %d, %v\n%s", exitCode(err), err, out)
	}
	untouchedRA(t, dirB, before)
}

// Two renewals at once on two nodes of one PostgreSQL store take turns
// under the store's lock: one renews, the other waits, then is refused
// without making a key. Both used to succeed, each recording a new RA that
// replaced the same old one, and the nodes served different RAs.
func TestCARenewRAOnTwoNodesAtOnce(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Database(t)
	open := func() store.Store {
		st, err := postgres.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	stA, stB := open(), open()
	clock := pkitest.NewClock(fixture.Start)
	dirA := t.TempDir()
	if _, _, err := ca.LoadOrCreate(dirA, ca.InitOptions{GenerateKey: testKeys.Generate}, clock); err != nil {
		t.Fatal(err)
	}
	dirB := copyCADir(t, dirA)
	before := raCertOf(t, dirB)
	clock.Advance(time.Hour)

	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// bWaits: node B's session waits for an advisory lock of this database.
	bWaits := func() bool {
		var n int
		err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
			AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&n)
		return err == nil && n > 0
	}
	started, bDone := make(chan struct{}), make(chan struct{})
	// Node A, in the middle of its renewal (making its key), lets node B
	// start and goes on once B waits for it, or has finished.
	genA := func(keyType string) (crypto.Signer, error) {
		close(started)
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && !bWaits(); {
			select {
			case <-bDone:
				return testKeys.Generate(keyType)
			case <-time.After(20 * time.Millisecond):
			}
		}
		return testKeys.Generate(keyType)
	}
	errA := make(chan error, 1)
	go func() {
		_, _, err := renewRA(ctx, stA, dirA, ca.RenewRAOptions{GenerateKey: genA}, clock, "node-a cli:test", nil)
		errA <- err
	}()
	<-started
	var keysB countingKeys
	_, _, errB := renewRA(ctx, stB, dirB, ca.RenewRAOptions{GenerateKey: keysB.generate}, clock, "node-b cli:test", nil)
	close(bDone)
	if err := <-errA; err != nil {
		t.Fatalf("node A: %v", err)
	}
	if !errors.Is(errB, errRARenewedElsewhere) || !strings.Contains(errB.Error(), pki.SerialText(raCertOf(t, dirA).SerialNumber)) {
		t.Fatalf("node B, renewing at the same time: %v, want refused naming A's RA", errB)
	}
	if n := keysB.n.Load(); n != 0 {
		t.Errorf("node B made %d keys", n)
	}
	untouchedRA(t, dirB, before)
	if evs := renewals(t, stA); len(evs) != 1 {
		var b bytes.Buffer
		for _, ev := range evs {
			b.WriteString(ev.Actor + ": " + ev.Detail + "\n")
		}
		t.Errorf("%d renewals recorded, want 1:\n%s", len(evs), b.String())
	}
}
