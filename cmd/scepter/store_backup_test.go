package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/cashare"
	"github.com/scepter/scepter/internal/crl"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
	"github.com/scepter/scepter/internal/store/sqlite"
)

// storeTestDir is a data directory with a CA, recorded in its SQLite
// store as a server records it, and certificates of that CA with the
// given serials.
func storeTestDir(t *testing.T, serials ...string) (dir, issuerID string) {
	t.Helper()
	ctx := context.Background()
	dir, a := caDataDir(t, ca.InitOptions{})
	st, err := sqlite.Open(ctx, filepath.Join(dir, "scepter.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	syncer := &cashare.Syncer{Store: st, Authority: a, Clock: pki.SystemClock{}, Node: "test", Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := syncer.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	for _, s := range serials {
		if err := recordTestCert(st, a.Issuer.ID, s); err != nil {
			t.Fatal(err)
		}
	}
	return dir, a.Issuer.ID
}

// recordTestCert records a certificate as issued now, with its event.
func recordTestCert(st store.Store, issuerID, serial string) error {
	now := pki.SystemClock{}.Now()
	keyHash := make([]byte, 32)
	rand.Read(keyHash)
	c := pki.Certificate{SerialHex: serial, IssuerID: issuerID, Issuer: "CN=Test CA", Subject: "CN=device-" + serial,
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), Status: pki.StatusValid,
		Profile: "default", Protocol: pki.ProtocolCLI, Source: pki.SourceIssued, KeyType: "p256",
		CreatedAt: now, DER: []byte{0x30, 0x03, 'd', 'e', 'r'}}
	return st.RecordIssuance(context.Background(), store.Issuance{Now: now, Certificate: c, KeyHash: keyHash,
		Events: []pki.AuditEvent{{Time: now, Type: pki.EventIssued, Actor: "test", SerialHex: serial, IssuerID: issuerID, Outcome: "success"}}})
}

// certStatuses lists a store's certificates as "SERIAL STATUS".
func certStatuses(t *testing.T, dataDir string) []string {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(dataDir, "scepter.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	certs, _, err := st.ListCertificates(context.Background(), store.CertFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range certs {
		out = append(out, c.SerialHex+" "+string(c.Status))
	}
	slices.Sort(out)
	return out
}

// asDataDir puts a copy of db in a directory of its own as scepter.db,
// for the CLI to open there without changing db.
func asDataDir(t *testing.T, db string) string {
	t.Helper()
	dir := t.TempDir()
	copyFile(t, db, filepath.Join(dir, "scepter.db"))
	return dir
}

// A backup taken while certificates are being recorded is a database of
// its own, mode 0600, whose audit trail verifies; the command says what
// it wrote.
func TestStoreBackupWhileWritten(t *testing.T) {
	ctx := context.Background()
	dir, issuer := storeTestDir(t, "a0")
	st, err := sqlite.Open(ctx, filepath.Join(dir, "scepter.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writeErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := recordTestCert(st, issuer, fmt.Sprintf("b%05x", i)); err != nil {
				writeErr = err
				return
			}
		}
	}()
	outDir := t.TempDir()
	var outs []string
	for i := range 3 {
		out := filepath.Join(outDir, fmt.Sprintf("backup-%d.db", i))
		e, stdout, stderr := testEnv(nil)
		if err := run(ctx, e, []string{"store", "backup", "--data-dir", dir, "--out", out}); err != nil {
			t.Fatalf("store backup: %v\n%s", err, stderr)
		}
		for _, want := range []string{out, "bytes", "schema version", "certificate(s)"} {
			if !strings.Contains(stdout.String(), want) {
				t.Errorf("store backup says %q, want %q in it", stdout, want)
			}
		}
		outs = append(outs, out)
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if writeErr != nil {
		t.Fatal(writeErr)
	}
	if entries, _ := os.ReadDir(outDir); len(entries) != len(outs) {
		t.Errorf("%s holds %d entries, want the %d backups alone", outDir, len(entries), len(outs))
	}
	for _, out := range outs {
		if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, %v; want mode 0600", out, fi.Mode(), err)
		}
		e, stdout, _ := testEnv(nil)
		if err := run(ctx, e, []string{"audit", "verify", "--data-dir", asDataDir(t, out)}); err != nil || !strings.Contains(stdout.String(), "OK") {
			t.Errorf("audit verify of %s: %v\n%s", out, err, stdout)
		}
	}
}

// The reviewer's scenario: a backup, then a revocation and an issuance
// that are only in scepter.db-wal (the server was killed before a
// checkpoint), then a restore. The restored store holds exactly the
// backup's rows (the certificate is valid again, as the backup has it:
// the replaced database's log is not replayed onto it), and the kept
// copy holds the newer rows, the log's included, in the file itself. The
// restore says that serve needs --store-restored once, since this data
// directory published a CRL numbered above the backup's.
func TestStoreRestoreLeavesNoMix(t *testing.T) {
	ctx := context.Background()
	dir, issuer := storeTestDir(t, "a1", "a2")
	db := filepath.Join(dir, "scepter.db")
	bk := filepath.Join(t.TempDir(), "bk.db")
	if out, err := runCLI("store", "backup", "--data-dir", dir, "--out", bk); err != nil {
		t.Fatalf("store backup: %v\n%s", err, out)
	}
	backupRows := certStatuses(t, asDataDir(t, bk))

	// A server on a copy of the database, whose last commits a reader's
	// snapshot keeps from being checkpointed; its files copied back then
	// are what a kill leaves.
	live := t.TempDir()
	copyFile(t, db, filepath.Join(live, "scepter.db"))
	st, err := sqlite.Open(ctx, filepath.Join(live, "scepter.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	reader, err := sql.Open("sqlite", "file:"+filepath.Join(live, "scepter.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	snapshot, err := reader.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer snapshot.Rollback()
	var n int
	if err := snapshot.QueryRow(`SELECT count(*) FROM certificates`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	now := pki.SystemClock{}.Now()
	if _, err := st.Revoke(ctx, issuer, "a1", 1, now, pki.AuditEvent{Time: now, Type: pki.EventRevoked, Actor: "test", SerialHex: "a1", IssuerID: issuer, Outcome: "success"}); err != nil {
		t.Fatal(err)
	}
	if err := recordTestCert(st, issuer, "b1"); err != nil {
		t.Fatal(err)
	}
	for _, suffix := range []string{"", "-wal"} {
		copyFile(t, filepath.Join(live, "scepter.db"+suffix), db+suffix)
	}
	os.Remove(db + "-shm")
	if f, err := sqlite.Inspect(ctx, db); err != nil || f.Certificates != 2 {
		t.Fatalf("before the restore, the database file alone: %+v, %v; want b1 in its log only", f, err)
	}
	newerRows := certStatuses(t, asDataDirWithLog(t, db))
	if !slices.Contains(newerRows, "a1 revoked") || !slices.Contains(newerRows, "b1 valid") {
		t.Fatalf("the database with its log: %v", newerRows)
	}
	// This data directory published CRL 5 of the issuing CA.
	if err := crl.NewNumbers(filepath.Join(dir, crl.NumbersDir)).Put(issuer, 5); err != nil {
		t.Fatal(err)
	}

	e, stdout, stderr := testEnv(nil)
	if err := run(ctx, e, []string{"store", "restore", "--data-dir", dir, "--in", bk}); err != nil {
		t.Fatalf("store restore: %v\n%s%s", err, stdout, stderr)
	}
	said := stdout.String()
	for _, want := range []string{"Restored " + bk, "before-restore-", "--store-restored", "published number 5", "scepter serve --data-dir " + dir, "certs revoke",
		"the database it replaced holds 3 certificate(s), 1 of them revoked", "the restored store 2, 0 revoked", "certs revoke --cert FILE"} {
		if !strings.Contains(said, want) {
			t.Errorf("store restore does not say %q:\n%s", want, said)
		}
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		if fi, err := os.Stat(db + suffix); err == nil {
			t.Errorf("%s%s is there after the restore (%d bytes)", db, suffix, fi.Size())
		}
	}
	if got := certStatuses(t, dir); !slices.Equal(got, backupRows) {
		t.Errorf("restored store: %v, want the backup's rows %v", got, backupRows)
	}
	e, out, _ := testEnv(nil)
	if err := run(ctx, e, []string{"audit", "verify", "--data-dir", dir}); err != nil {
		t.Errorf("audit verify of the restored store: %v\n%s", err, out)
	}

	kept, _ := filepath.Glob(db + ".before-restore-*")
	if len(kept) != 1 {
		t.Fatalf("kept copies: %v, want one", kept)
	}
	if _, err := os.Stat(kept[0] + "-wal"); err == nil {
		t.Errorf("%s-wal is there: the log was not folded into the kept copy", kept[0])
	}
	if f, err := sqlite.Inspect(ctx, kept[0]); err != nil || f.Certificates != 3 {
		t.Errorf("the kept copy's file alone: %+v, %v; want the 3 certificates, b1 included", f, err)
	}
	if got := certStatuses(t, asDataDir(t, kept[0])); !slices.Equal(got, newerRows) {
		t.Errorf("the kept copy: %v, want the newer rows %v", got, newerRows)
	}
}

// asDataDirWithLog is asDataDir for a database and its write-ahead log.
func asDataDirWithLog(t *testing.T, db string) string {
	t.Helper()
	dir := asDataDir(t, db)
	copyFile(t, db+"-wal", filepath.Join(dir, "scepter.db-wal"))
	return dir
}

// dirState is what a data directory holds: each name with its contents.
func dirState(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range entries {
		if e.Name() == storeLockFile {
			continue // empty; any command that opens the database makes it
		}
		if e.Type().IsRegular() {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			out[e.Name()] = b
		} else {
			out[e.Name()] = nil
		}
	}
	return out
}

func sameDirState(t *testing.T, before, after map[string][]byte) {
	t.Helper()
	for name, b := range before {
		if a, ok := after[name]; !ok || !bytes.Equal(a, b) {
			t.Errorf("%s changed (there: %v)", name, ok)
		}
	}
	for name := range after {
		if _, ok := before[name]; !ok && name != serveLockFile {
			t.Errorf("%s appeared", name)
		}
	}
}

// Beside a running server: a backup is taken, and a restore is refused
// (the server holds the data directory's lock), changing nothing; once
// the server stops, the restore is made, and the server starts on it.
func TestStoreRestoreRefusedWhileServeRuns(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	args := []string{"--listen", "127.0.0.1:0", "--est-listen", "off", "--challenge", "test", "--data-dir", dir}
	s := serveInProcess(t, nil, args...)
	if s.ended {
		t.Fatalf("serve: %v\n%s", s.err, s.errb.String())
	}
	bk := filepath.Join(t.TempDir(), "bk.db")
	if out, err := runCLI("store", "backup", "--data-dir", dir, "--out", bk); err != nil {
		t.Fatalf("store backup beside serve: %v\n%s", err, out)
	}
	// The server may write meanwhile: the file must be the one it has
	// open, and nothing be added beside it.
	before := dirState(t, dir)
	dbBefore, err := os.Stat(filepath.Join(dir, "scepter.db"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := runCLI("store", "restore", "--data-dir", dir, "--in", bk)
	if exitCode(err) != 1 || !strings.Contains(err.Error(), "stop scepter serve first") || !strings.Contains(err.Error(), "(pid ") {
		t.Fatalf("restore beside serve: %v (exit %d), want exit 1 naming the server and saying to stop scepter serve first\n%s", err, exitCode(err), out)
	}
	if dbAfter, err := os.Stat(filepath.Join(dir, "scepter.db")); err != nil || !os.SameFile(dbBefore, dbAfter) {
		t.Errorf("scepter.db was replaced: %v", err)
	}
	for name := range dirState(t, dir) {
		if _, ok := before[name]; !ok {
			t.Errorf("%s appeared", name)
		}
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	if out, err := runCLI("store", "restore", "--data-dir", dir, "--in", bk); err != nil {
		t.Fatalf("restore once serve stopped: %v\n%s", err, out)
	}
	if s := serveInProcess(t, nil, args...); s.ended {
		t.Fatalf("serve on the restored store: %v\n%s", s.err, s.errb.String())
	}
}

// A file that is no backup of this CA's store is refused, naming what is
// wrong, and the data directory is left as it was: a text file, another
// SQLite database, a damaged one, one of a newer schema, one of another
// CA, and a file with a write-ahead log or rollback journal beside it (or beside
// the file a symbolic link to it names).
func TestStoreRestoreRefusals(t *testing.T) {
	dir, _ := storeTestDir(t, "a1")
	files := t.TempDir()
	path := func(name string) string { return filepath.Join(files, name) }
	good := path("good.db")
	if out, err := runCLI("store", "backup", "--data-dir", dir, "--out", good); err != nil {
		t.Fatalf("store backup: %v\n%s", err, out)
	}
	goodBytes, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	exec := func(db, q string) {
		t.Helper()
		h, err := sql.Open("sqlite", "file:"+db)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		if _, err := h.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(path("text"), []byte("not a database\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	exec(path("other.db"), `CREATE TABLE t (x)`)
	damaged := append([]byte{}, goodBytes...)
	for i := 4096; i < len(damaged); i++ {
		damaged[i] ^= 0x5a
	}
	if err := os.WriteFile(path("damaged.db"), damaged, 0o600); err != nil {
		t.Fatal(err)
	}
	copyFile(t, good, path("newer.db"))
	exec(path("newer.db"), `INSERT INTO schema_migrations (version, name, applied_at) VALUES (99999, 'from_the_future', '')`)
	otherCA, _ := storeTestDir(t, "c1")
	if out, err := runCLI("store", "backup", "--data-dir", otherCA, "--out", path("other-ca.db")); err != nil {
		t.Fatalf("store backup: %v\n%s", err, out)
	}
	// Another CA's store as schema 1 kept it: no CA recorded, only its
	// certificates' issuers say whose it is (r115 D5).
	copyFile(t, path("other-ca.db"), path("other-ca-unrecorded.db"))
	exec(path("other-ca-unrecorded.db"), `DELETE FROM ca_generations`)
	copyFile(t, good, path("with-log.db"))
	if err := os.WriteFile(path("with-log.db-wal"), []byte("frames"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A symbolic link to it: SQLite looks for the log beside the target.
	if err := os.Symlink(path("with-log.db"), path("link-to-with-log.db")); err != nil {
		t.Fatal(err)
	}
	copyFile(t, good, path("with-journal.db"))
	if err := os.WriteFile(path("with-journal.db-journal"), []byte("undo"), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		file, want string
	}{
		{"text", "not an SQLite database"},
		{"other.db", "without scepter's tables"},
		{"damaged.db", "damaged"},
		{"newer.db", "newer than this binary"},
		{"other-ca.db", "backup of the CA with root"},
		{"other-ca-unrecorded.db", "records no CA, and its certificates were issued by 1 issuer(s) that are none of"},
		{"with-log.db", "with-log.db-wal"},
		{"link-to-with-log.db", "with-log.db-wal"},
		{"with-journal.db", "with-journal.db-journal"},
		{"missing.db", "no such file"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			before := dirState(t, dir)
			out, err := runCLI("store", "restore", "--data-dir", dir, "--in", path(tc.file))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("restore of %s: %v, want a refusal saying %q\n%s", tc.file, err, tc.want, out)
			}
			sameDirState(t, before, dirState(t, dir))
		})
	}
}

// An existing --out is refused (exit 2) unless --force; so are the store's
// own files, and a PostgreSQL store, which pg_dump backs up.
func TestStoreBackupRefusals(t *testing.T) {
	dir, issuer := storeTestDir(t, "a1")
	if err := crl.NewNumbers(filepath.Join(dir, crl.NumbersDir)).Put(issuer, 3); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "bk.db")
	if err := os.WriteFile(out, []byte("an older backup"), 0o600); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(t.TempDir(), "scepter.toml")
	if err := os.WriteFile(config, []byte(`store = "postgres://scepter@db.example/scepter"`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A link elsewhere to the data directory's CA files.
	link := filepath.Join(t.TempDir(), "ca-link")
	if err := os.Symlink(filepath.Join(dir, "ca"), link); err != nil {
		t.Fatal(err)
	}
	caFiles, _ := filepath.Glob(filepath.Join(dir, "ca", "*"))
	if len(caFiles) == 0 {
		t.Fatal("no CA files in the data directory")
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"existing file", []string{"--out", out}, "--force"},
		{"a CA file", []string{"--out", caFiles[0], "--force"}, "inside the data directory"},
		{"a CA file through a link", []string{"--out", filepath.Join(link, filepath.Base(caFiles[0])), "--force"}, "inside the data directory"},
		{"a CRL numbers file", []string{"--out", filepath.Join(dir, crl.NumbersDir, issuer), "--force"}, "inside the data directory"},
		{"a new file in the data directory", []string{"--out", filepath.Join(dir, "bk.db")}, "inside the data directory"},
		{"no such directory", []string{"--out", filepath.Join(t.TempDir(), "unmounted", "bk.db")}, "does not exist: create it, or mount"},
		{"the database", []string{"--out", filepath.Join(dir, "scepter.db"), "--force"}, "store's own scepter.db"},
		{"its log", []string{"--out", filepath.Join(dir, "scepter.db-wal"), "--force"}, "store's own scepter.db-wal"},
		{"postgres", []string{"--out", out, "--store", "postgres://scepter@db.example/scepter"}, "pg_dump --format=custom"},
		{"postgres in the config", []string{"--out", out, "--config", config}, "pg_dump --format=custom"},
		{"no --out", nil, "--out FILE is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := dirState(t, dir)
			res, err := runCLI(append([]string{"store", "backup", "--data-dir", dir}, tc.args...)...)
			if exitCode(err) != 2 || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v (exit %d), want exit 2 saying %q\n%s", err, exitCode(err), tc.want, res)
			}
			if b, _ := os.ReadFile(out); string(b) != "an older backup" {
				t.Error("--out was changed")
			}
			sameDirState(t, db, dirState(t, dir))
		})
	}
	if res, err := runCLI("store", "backup", "--data-dir", dir, "--out", out, "--force"); err != nil {
		t.Fatalf("--force: %v\n%s", err, res)
	}
	if f, err := sqlite.Inspect(context.Background(), out); err != nil || f.Certificates != 1 {
		t.Errorf("the backup written with --force: %+v, %v", f, err)
	}
	if res, err := runCLI("store", "restore", "--data-dir", dir, "--in", out, "--store", "postgres://scepter@db.example/scepter"); exitCode(err) != 2 || !strings.Contains(err.Error(), "pg_restore") {
		t.Errorf("restore with a PostgreSQL store: %v\n%s", err, res)
	}
}

// A restore into a data directory without a database (a new machine,
// the CA's files put back) puts the backup in place and keeps nothing;
// it says that DATA/crl-numbers is missing, for the store holds CRLs.
func TestStoreRestoreIntoNewDataDir(t *testing.T) {
	dir, issuer := storeTestDir(t, "a1", "a2")
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "scepter.db"))
	if err != nil {
		t.Fatal(err)
	}
	now := pki.SystemClock{}.Now()
	err = st.PutCRL(context.Background(), store.CRL{IssuerID: issuer, Number: 3, ThisUpdate: now, NextUpdate: now.Add(time.Hour), DER: []byte{0x30, 0}, CreatedAt: now}, 10)
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	bk := filepath.Join(t.TempDir(), "bk.db")
	if out, err := runCLI("store", "backup", "--data-dir", dir, "--out", bk); err != nil {
		t.Fatalf("store backup: %v\n%s", err, out)
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(filepath.Join(dir, "scepter.db"+suffix)); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	// A restore killed before its rename left its copy.
	leftover := filepath.Join(dir, restoreTempPrefix+"123456")
	if err := os.WriteFile(leftover, []byte("an earlier restore's copy"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runCLI("store", "restore", "--data-dir", dir, "--in", bk)
	if err != nil {
		t.Fatalf("store restore: %v\n%s", err, out)
	}
	if _, err := os.Stat(leftover); !os.IsNotExist(err) || !strings.Contains(out, "removed "+leftover) {
		t.Errorf("the copy an earlier restore left: %v\n%s", err, out)
	}
	if strings.Contains(out, "kept") || !strings.Contains(out, "Next: start scepter serve --data-dir "+dir+".") ||
		!strings.Contains(out, filepath.Join(dir, crl.NumbersDir)+" is missing") {
		t.Errorf("store restore says:\n%s", out)
	}
	if got := certStatuses(t, dir); !slices.Equal(got, []string{"a1 valid", "a2 valid"}) {
		t.Errorf("restored store: %v", got)
	}
	if kept, _ := filepath.Glob(filepath.Join(dir, "scepter.db.before-restore-*")); len(kept) != 0 {
		t.Errorf("kept copies of no database: %v", kept)
	}
}

// A database too damaged to open has its log kept beside the kept copy,
// under the name SQLite looks for, and the restore is made, with a
// warning.
func TestStoreRestoreOverAnUnreadableDatabase(t *testing.T) {
	dir, _ := storeTestDir(t, "a1")
	bk := filepath.Join(t.TempDir(), "bk.db")
	if out, err := runCLI("store", "backup", "--data-dir", dir, "--out", bk); err != nil {
		t.Fatalf("store backup: %v\n%s", err, out)
	}
	db := filepath.Join(dir, "scepter.db")
	for suffix, data := range map[string]string{"": "overwritten by accident", "-wal": "the log's frames"} {
		if err := os.WriteFile(db+suffix, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	os.Remove(db + "-shm")
	out, err := runCLI("store", "restore", "--data-dir", dir, "--in", bk)
	if err != nil {
		t.Fatalf("store restore: %v\n%s", err, out)
	}
	if !strings.Contains(out, "could not be folded") {
		t.Errorf("no warning about the log:\n%s", out)
	}
	kept, _ := filepath.Glob(db + ".before-restore-*[0-9TZ]")
	if len(kept) != 1 {
		t.Fatalf("kept copies: %v, want one", kept)
	}
	for suffix, want := range map[string]string{"": "overwritten by accident", "-wal": "the log's frames"} {
		if b, err := os.ReadFile(kept[0] + suffix); err != nil || string(b) != want {
			t.Errorf("kept %s: %q, %v; want %q", suffix, b, err, want)
		}
	}
	if got := certStatuses(t, dir); !slices.Equal(got, []string{"a1 valid"}) {
		t.Errorf("restored store: %v", got)
	}
}

// A command that has the SQLite database open (certs revoke, challenge
// new, ...) keeps a restore off it, for its writes would go to the
// replaced file; and while a restore runs, such a command is refused.
func TestStoreRestoreWaitsForOtherCommands(t *testing.T) {
	ctx := context.Background()
	dir, _ := storeTestDir(t, "a1")
	bk := filepath.Join(t.TempDir(), "bk.db")
	if out, err := runCLI("store", "backup", "--data-dir", dir, "--out", bk); err != nil {
		t.Fatalf("store backup: %v\n%s", err, out)
	}
	st, err := openStore(ctx, "", dir, true)
	if err != nil {
		t.Fatal(err)
	}
	out, err := runCLI("store", "restore", "--data-dir", dir, "--in", bk)
	if exitCode(err) != 1 || !strings.Contains(err.Error(), "another scepter command has the database") {
		t.Errorf("restore while a command has the store open: %v (exit %d)\n%s", err, exitCode(err), out)
	}
	if kept, _ := filepath.Glob(filepath.Join(dir, "scepter.db.before-restore-*")); len(kept) != 0 {
		t.Errorf("the refused restore kept %v", kept)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if out, err := runCLI("store", "restore", "--data-dir", dir, "--in", bk); err != nil {
		t.Fatalf("restore once the command closed the store: %v\n%s", err, out)
	}

	unlock, err := lockStore(dir) // as a restore under way holds it
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if out, err := runCLI("certs", "list", "--data-dir", dir); err == nil || !strings.Contains(err.Error(), "a 'scepter store restore' is replacing the database") {
		t.Errorf("certs list during a restore: %v\n%s", err, out)
	}
}

// A scepter.db that is a symbolic link is refused, naming its target:
// the rename would replace the link, and keep only the link.
func TestStoreRestoreRefusesALinkedDatabase(t *testing.T) {
	dir, _ := storeTestDir(t, "a1")
	db := filepath.Join(dir, "scepter.db")
	bk := filepath.Join(t.TempDir(), "bk.db")
	if out, err := runCLI("store", "backup", "--data-dir", dir, "--out", bk); err != nil {
		t.Fatalf("store backup: %v\n%s", err, out)
	}
	elsewhere := filepath.Join(t.TempDir(), "scepter.db")
	if err := os.Rename(db, elsewhere); err != nil {
		t.Fatal(err)
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		os.Rename(db+suffix, elsewhere+suffix)
	}
	if err := os.Symlink(elsewhere, db); err != nil {
		t.Fatal(err)
	}
	before := dirState(t, filepath.Dir(elsewhere))
	out, err := runCLI("store", "restore", "--data-dir", dir, "--in", bk)
	if err == nil || !strings.Contains(err.Error(), "symbolic link to "+elsewhere) {
		t.Fatalf("restore over a linked scepter.db: %v, want it refused naming %s\n%s", err, elsewhere, out)
	}
	if fi, err := os.Lstat(db); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("%s is no longer the link: %v", db, err)
	}
	sameDirState(t, before, dirState(t, filepath.Dir(elsewhere)))
	if kept, _ := filepath.Glob(db + ".before-restore-*"); len(kept) != 0 {
		t.Errorf("kept copies: %v", kept)
	}
}

// A backup removes the copies a killed backup to the same --out left
// beside it, saying so; files of other names, and a copy still being
// written (another backup running), stay.
func TestStoreBackupRemovesKilledBackupsCopies(t *testing.T) {
	dir, _ := storeTestDir(t, "a1")
	outDir := t.TempDir()
	out := filepath.Join(outDir, "bk.db")
	stale := time.Now().Add(-time.Hour) // file times are the file system's clock
	files := map[string]bool{           // name: removed
		".bk.db.new-123456":         true,
		".bk.db.new-123456-journal": true,
		".bk.db.new-777":            false, // written just now
		".bk.db.new-abc":            false,
		".other.db.new-123456":      false,
		"x.bk.db.new-123456":        false,
		".bk.db.new-123456-wal.txt": false,
	}
	for name := range files {
		path := filepath.Join(outDir, name)
		if err := os.WriteFile(path, []byte("a copy"), 0o600); err != nil {
			t.Fatal(err)
		}
		if name != ".bk.db.new-777" {
			if err := os.Chtimes(path, stale, stale); err != nil {
				t.Fatal(err)
			}
		}
	}
	said, err := runCLI("store", "backup", "--data-dir", dir, "--out", out)
	if err != nil {
		t.Fatalf("store backup: %v\n%s", err, said)
	}
	for name, removed := range files {
		path := filepath.Join(outDir, name)
		_, err := os.Stat(path)
		if gone := os.IsNotExist(err); gone != removed {
			t.Errorf("%s: removed %v, want %v", name, gone, removed)
		}
		if removed && !strings.Contains(said, "removed "+path) {
			t.Errorf("the backup does not say it removed %s:\n%s", path, said)
		}
	}
	if f, err := sqlite.Inspect(context.Background(), out); err != nil || f.Certificates != 1 {
		t.Errorf("the backup: %+v, %v", f, err)
	}
}

// A backup of a data directory it cannot write to says why it fails (SQLite
// writes scepter.db-shm to read the database) and what to do.
func TestStoreBackupOfAnUnwritableDataDir(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root writes to a directory of mode 0500")
	}
	dir, _ := storeTestDir(t, "a1")
	db := filepath.Join(dir, "scepter.db")
	os.Remove(db + "-shm")
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(dir, 0o700)
	out, err := runCLI("store", "backup", "--data-dir", dir, "--out", filepath.Join(t.TempDir(), "bk.db"))
	if err == nil || !strings.Contains(err.Error(), "scepter.db-shm") || !strings.Contains(err.Error(), "mount the data directory read-write") {
		t.Errorf("backup of a read-only data directory: %v, want it to say why and what to do\n%s", err, out)
	}
}

// A backup whose audit trail was changed outside scepter is restored (it
// may be all there is), with a warning naming the first bad record and
// `audit verify`; an intact one says nothing of its trail.
func TestStoreRestoreWarnsOfAChangedTrail(t *testing.T) {
	for _, c := range []struct {
		name string
		sql  []string
		want string // in the warning; "": no warning
	}{
		{"intact", nil, ""},
		{"record edited", []string{`UPDATE audit_events SET actor = 'cli:nobody' WHERE id = 2`}, "record 2 ("},
		{"record removed", []string{`DELETE FROM audit_events WHERE id = 2`}, "record 2 is missing before it: removed"},
		// A trail nothing can be chained to is refused instead
		// (TestStoreRestoreRefusesATrailNothingCanBeChainedTo).
	} {
		t.Run(c.name, func(t *testing.T) {
			dir, _ := storeTestDir(t, "a1", "a2")
			bk := filepath.Join(t.TempDir(), "bk.db")
			if out, err := runCLI("store", "backup", "--data-dir", dir, "--out", bk); err != nil {
				t.Fatalf("store backup: %v\n%s", err, out)
			}
			tamperSQLite(t, bk, c.sql...)
			out, err := runCLI("store", "restore", "--data-dir", dir, "--in", bk)
			if err != nil {
				t.Fatalf("store restore: %v\n%s", err, out)
			}
			if got := certStatuses(t, dir); !slices.Equal(got, []string{"a1 valid", "a2 valid"}) {
				t.Errorf("restored store: %v", got)
			}
			warned := strings.Contains(out, "audit trail")
			switch {
			case c.want == "" && warned:
				t.Errorf("an intact trail is warned of:\n%s", out)
			case c.want != "" && (!strings.Contains(out, "scepter: warning: the backup's audit trail does not verify") ||
				!strings.Contains(out, c.want) || !strings.Contains(out, "run scepter audit verify --data-dir "+dir)):
				t.Errorf("store restore says:\n%s\nwant a warning saying %q and naming scepter audit verify", out, c.want)
			}
		})
	}
}

// A backup whose trail was wiped whole, restored over a database: what
// only moves forward cannot be carried into it (each is recorded with its
// event, and nothing can be chained to that trail), so the restore is
// refused saying so, and the database stays as it was, with no copy of it
// kept beside it (nothing was replaced). The refusal says only that: not
// that the backup was "restored all the same", nor to verify the trail of
// the database, which is not the backup's (r125 D2).
func TestStoreRestoreOfAWipedTrail(t *testing.T) {
	dir, _ := storeTestDir(t, "a1", "a2")
	bk := filepath.Join(t.TempDir(), "bk.db")
	if out, err := runCLI("store", "backup", "--data-dir", dir, "--out", bk); err != nil {
		t.Fatalf("store backup: %v\n%s", err, out)
	}
	tamperSQLite(t, bk, `DELETE FROM audit_events`, `DELETE FROM audit_head`)
	out, err := runCLI("store", "restore", "--data-dir", dir, "--in", bk)
	if err == nil {
		t.Fatalf("store restore of a wiped trail over a database succeeded:\n%s", out)
	}
	db := filepath.Join(dir, "scepter.db")
	for _, want := range []string{"--in " + bk + " cannot be restored over " + db, "the backup's audit trail was wiped whole",
		"the trail is empty, but the store holds certificates", db + " is unchanged: restore a backup whose audit trail verifies"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("store restore: %v\nwant it to say %q", err, want)
		}
	}
	for _, wrong := range []string{"restored all the same", "audit verify", "before-restore", "kept in"} {
		if strings.Contains(err.Error()+out, wrong) {
			t.Errorf("store restore: %v\n%s\nwant it not to say %q: nothing was restored, and the database's own trail verifies", err, out, wrong)
		}
	}
	if got := certStatuses(t, dir); !slices.Equal(got, []string{"a1 valid", "a2 valid"}) {
		t.Errorf("the database after the refused restore: %v", got)
	}
	if left, _ := filepath.Glob(db + ".before-restore-*"); len(left) > 0 {
		t.Errorf("a refused restore left %v beside the database it did not replace", left)
	}
}

// A backup whose trail nothing can be chained to (wiped whole, a record
// after its head, its head removed) is refused into a new data directory
// as over a database: serve would not start on it and every change would
// be refused, so a restore that put it in place and said "Next: start
// scepter serve" led to a dead end. Nothing is written, and the refusal
// says what is wrong with the backup and what to do (r141 D1).
func TestStoreRestoreRefusesATrailNothingCanBeChainedTo(t *testing.T) {
	for _, c := range []struct {
		name  string
		sql   []string
		found string // what the refusal says of the trail
	}{
		{"wiped", []string{`DELETE FROM audit_events`, `DELETE FROM audit_head`}, "the backup's audit trail was wiped whole"},
		{"record after the head", []string{`INSERT INTO audit_events (time, type, actor, outcome, reason) VALUES (0, 'certificate.revoked', 'x', 'success', 'x')`},
			"nothing can be chained to it"},
		{"head removed", []string{`DELETE FROM audit_head`}, "nothing can be chained to it"},
	} {
		for _, over := range []bool{false, true} {
			name := c.name + "/into a new data directory"
			if over {
				name = c.name + "/over a database"
			}
			t.Run(name, func(t *testing.T) {
				dir, _ := storeTestDir(t, "a1", "a2")
				bk := filepath.Join(t.TempDir(), "bk.db")
				if out, err := runCLI("store", "backup", "--data-dir", dir, "--out", bk); err != nil {
					t.Fatalf("store backup: %v\n%s", err, out)
				}
				tamperSQLite(t, bk, c.sql...)
				db := filepath.Join(dir, "scepter.db")
				if !over {
					for _, suffix := range []string{"", "-wal", "-shm"} {
						if err := os.Remove(db + suffix); err != nil && !os.IsNotExist(err) {
							t.Fatal(err)
						}
					}
				}
				out, err := runCLI("store", "restore", "--data-dir", dir, "--in", bk)
				if err == nil {
					t.Fatalf("store restore succeeded:\n%s", out)
				}
				var usage usageError
				if errors.As(err, &usage) {
					t.Errorf("store restore: a usage error (exit 2): %v", err)
				}
				wants := []string{"--in " + bk + " cannot be restored into " + dir + ": ", c.found,
					"'scepter serve' does not start on such a trail", "nothing was restored: restore a backup whose audit trail verifies"}
				if over {
					wants = []string{"--in " + bk + " cannot be restored over " + db + ": ", c.found,
						"'scepter serve' does not start on such a trail", db + " is unchanged: restore a backup whose audit trail verifies"}
				}
				for _, want := range wants {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("store restore: %v\nwant it to say %q", err, want)
					}
				}
				for _, wrong := range []string{"restored all the same", "Next:", "Restored "} {
					if strings.Contains(err.Error()+out, wrong) {
						t.Errorf("store restore: %v\n%s\nwant it not to say %q", err, out, wrong)
					}
				}
				left, _ := filepath.Glob(filepath.Join(dir, "*scepter.db*"))
				if over {
					if got := certStatuses(t, dir); !slices.Equal(got, []string{"a1 valid", "a2 valid"}) {
						t.Errorf("the database after the refused restore: %v", got)
					}
					left, _ = filepath.Glob(filepath.Join(dir, "*scepter.db.*"))
				}
				if len(left) > 0 {
					t.Errorf("the refused restore left %v in %s", left, dir)
				}
			})
		}
	}
}
