package main

import (
	"bytes"
	"context"
	"crypto"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/store/migrate"
	"github.com/scepter/scepter/internal/store/sqlite"
	"github.com/scepter/scepter/internal/store/sqlite/sqlitetest"
)

// syncBuffer is a bytes.Buffer for writers in other goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// serveOnce runs 'scepter serve' in-process (SCEP on a free port, no
// HTTPS) with args until it has printed its start-up lines, stops it, and
// returns what it wrote and its error (a start that fails returns at once).
func serveOnce(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	return serveOnceWith(t, nil, append([]string{"--listen", "127.0.0.1:0", "--est-listen", "off", "--challenge", "test"}, args...)...)
}

// serveOnceWith is serveOnce with these environment variables and only
// the arguments given.
func serveOnceWith(t *testing.T, vars map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	s := serveInProcess(t, vars, args...)
	if s.ended {
		return s.out.String(), s.errb.String(), s.err
	}
	err = s.stop()
	return s.out.String(), s.errb.String(), err
}

// inProcessServe is a 'scepter serve' run in this process.
type inProcessServe struct {
	out, errb *syncBuffer
	cancel    context.CancelFunc
	done      chan error
	// ended: serve returned before it printed its start-up lines (err).
	ended bool
	err   error
}

// serveInProcess runs 'scepter serve' with args and these environment
// variables until it has printed its start-up lines, or ended.
func serveInProcess(t *testing.T, vars map[string]string, args ...string) *inProcessServe {
	t.Helper()
	return serveInProcessKeys(t, testKeys.Generate, vars, args...)
}

// serveInProcessKeys is serveInProcess with the key generator of a new CA.
func serveInProcessKeys(t *testing.T, generateKey func(string) (crypto.Signer, error), vars map[string]string, args ...string) *inProcessServe {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &inProcessServe{out: &syncBuffer{}, errb: &syncBuffer{}, cancel: cancel, done: make(chan error, 1)}
	e := env{stdout: s.out, stderr: s.errb, lookupEnv: func(k string) (string, bool) { v, ok := vars[k]; return v, ok },
		generateKey: generateKey, newSQLite: migratedSQLite(t)}
	go func() { s.done <- run(ctx, e, append([]string{"serve"}, args...)) }()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(s.out.String(), "Data directory:") {
		select {
		case err := <-s.done:
			cancel()
			s.ended, s.err = true, err
			return s
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			t.Fatalf("serve did not start within 60 s:\n%s\n%s", s.out.String(), s.errb.String())
		}
	}
	t.Cleanup(func() { s.stop() })
	return s
}

// migratedSQLite is an env.newSQLite that writes a copy of a database
// migrated once per test binary (sqlitetest): serve opens it as the one it
// would have made, the same schema and rows, without applying every
// migration on each start. TestServeMigratesANewSQLiteDatabase starts
// serve without it.
func migratedSQLite(t *testing.T) func(path string) error {
	t.Helper()
	template := filepath.Join(t.TempDir(), "migrated.db")
	sqlitetest.Create(t, template)
	b, err := os.ReadFile(template)
	if err != nil {
		t.Fatal(err)
	}
	return func(path string) error {
		// O_EXCL: serve found no database there, and none is overwritten.
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		if _, err := f.Write(b); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
}

// serve's own first start on SQLite, without env.newSQLite (as in
// production): it creates the database, applies every migration from
// version 0 and says so in the log; the database it leaves is the one the
// other serve tests start on (migratedSQLite), at this binary's version.
func TestServeMigratesANewSQLiteDatabase(t *testing.T) {
	want, err := migrate.Latest(sqlite.Migrations())
	if err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(t.TempDir(), "data")
	s := &inProcessServe{out: &syncBuffer{}, errb: &syncBuffer{}, done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	e := env{stdout: s.out, stderr: s.errb, lookupEnv: func(string) (string, bool) { return "", false }, generateKey: testKeys.Generate}
	go func() {
		s.done <- run(ctx, e, []string{"serve", "--listen", "127.0.0.1:0", "--est-listen", "off", "--challenge", "test", "--data-dir", dataDir})
	}()
	for !strings.Contains(s.out.String(), "Data directory:") {
		select {
		case err := <-s.done:
			t.Fatalf("serve stopped: %v\n%s", err, s.errb.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err := s.stop(); err != nil {
		t.Fatalf("serve: %v\n%s", err, s.errb.String())
	}
	if logLine := fmt.Sprintf("msg=\"store migrated\" from_schema=0 to_schema=%d", want); !strings.Contains(s.errb.String(), logLine) {
		t.Errorf("serve's log does not say %s:\n%s", logLine, s.errb.String())
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(dataDir, "scepter.db"), migrate.WithoutMigrating())
	if err != nil {
		t.Fatalf("the database serve made is not at version %d: %v", want, err)
	}
	st.Close()
}

// stop ends a running serve and returns what it returned (once).
func (s *inProcessServe) stop() error {
	if s.ended {
		return s.err
	}
	s.cancel()
	s.ended, s.err = true, <-s.done
	return s.err
}

func dirMode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestSecureDataDir(t *testing.T) {
	tests := []struct {
		mode      os.FileMode
		want      os.FileMode
		tightened bool
	}{
		{0o755, 0o700, true},
		{0o750, 0o700, true},
		{0o705, 0o700, true},
		{0o777, 0o700, true},
		{0o710, 0o700, true},
		{0o700, 0o700, false},
		{0o500, 0o500, false}, // tighter already: left alone
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%04o", tt.mode), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, tt.mode); err != nil {
				t.Fatal(err)
			}
			var logb bytes.Buffer
			if err := secureDataDir(dir, slog.New(slog.NewTextHandler(&logb, nil))); err != nil {
				t.Fatal(err)
			}
			if m := dirMode(t, dir); m != tt.want {
				t.Errorf("mode %04o, want %04o", m, tt.want)
			}
			logged := strings.Contains(logb.String(), fmt.Sprintf("old_mode=%04o new_mode=0700", tt.mode)) &&
				strings.Contains(logb.String(), "dir="+dir)
			if logged != tt.tightened {
				t.Errorf("log %q, want a line about tightening: %v", logb.String(), tt.tightened)
			}
			if !tt.tightened && logb.Len() != 0 {
				t.Errorf("unexpected log: %s", logb.String())
			}
		})
	}
	if err := secureDataDir(filepath.Join(t.TempDir(), "missing"), slog.New(slog.DiscardHandler)); err == nil {
		t.Error("a missing data directory passed")
	}
}

// The HTTPS key our CA issued lives in DATA/tls, and the OCSP responders'
// keys in DATA/ocsp, outside the CA directory: they are checked with the
// data directory.
func TestSecureDataDirTLSKey(t *testing.T) {
	for _, name := range []string{"tls/server.key", "ocsp/0123abcd.key"} {
		for _, tt := range []struct {
			mode os.FileMode
			ok   bool
		}{{0o600, true}, {0o640, false}, {0o644, false}} {
			dir := t.TempDir()
			key := filepath.Join(dir, name)
			os.MkdirAll(filepath.Dir(key), 0o700)
			os.WriteFile(key, []byte("key"), 0o600)
			os.Chmod(key, tt.mode)
			err := secureDataDir(dir, slog.New(slog.DiscardHandler))
			if tt.ok != (err == nil) || (err != nil && !strings.Contains(err.Error(), "chmod 600 "+key)) {
				t.Errorf("%s %04o: err = %v", name, tt.mode, err)
			}
		}
	}
}

// serve tightens an existing data directory that others may enter, and
// says so; the old code left it as it was.
func TestServeTightensDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755) // whatever the umask
	_, stderr, err := serveOnce(t, "--data-dir", dir)
	if err != nil {
		t.Fatalf("serve: %v\n%s", err, stderr)
	}
	if m := dirMode(t, dir); m != 0o700 {
		t.Errorf("data dir mode %04o after serve, want 0700", m)
	}
	if !strings.Contains(stderr, "tightened") || !strings.Contains(stderr, "old_mode=0755 new_mode=0700") {
		t.Errorf("no log line about the tightening:\n%s", stderr)
	}
	// Once tight, nothing more is said.
	_, stderr, err = serveOnce(t, "--data-dir", dir)
	if err != nil || strings.Contains(stderr, "tightened") {
		t.Errorf("second start: err %v\n%s", err, stderr)
	}
}

// Under systemd (JOURNAL_STREAM set) the banner goes to the journal: the
// generated challenge and console password are named by their files only.
func TestGeneratedSecretsStayOutOfTheJournal(t *testing.T) {
	dir := t.TempDir()
	out, errOut, err := serveOnceWith(t, map[string]string{"JOURNAL_STREAM": "8:12345"},
		"--data-dir", dir, "--listen", "127.0.0.1:0", "--est-listen", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("serve: %v\n%s", err, errOut)
	}
	challenge, err := os.ReadFile(filepath.Join(dir, "challenge.txt"))
	if err != nil {
		t.Fatal(err)
	}
	password, err := os.ReadFile(filepath.Join(dir, "admin-password.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for name, secret := range map[string][]byte{"challenge": challenge, "console password": password} {
		if s := strings.TrimSpace(string(secret)); s == "" || strings.Contains(out+errOut, s) {
			t.Errorf("the %s is in the output that goes to the journal:\n%s", name, out)
		}
	}
	if !strings.Contains(out, "challenge.txt (not shown") || !strings.Contains(out, "admin-password.txt (not shown") {
		t.Errorf("the banner does not say where the secrets are:\n%s", out)
	}
}

// A directory open to others that is not scepter's keeps its mode: a
// shared one (the sticky bit, as /tmp) is refused, as is one holding
// others' files and none of scepter's; one holding scepter's files, or
// nothing but lost+found, is tightened.
func TestSecureDataDirLeavesForeignDirectories(t *testing.T) {
	for _, tt := range []struct {
		name    string
		mode    os.FileMode
		entries []string
		refused string // part of the error; "" for tightened
	}{
		{"sticky", 0o777 | os.ModeSticky, nil, "sticky bit"},
		{"others' files", 0o755, []string{"notes.txt"}, "holds notes.txt, which is not scepter's"},
		{"scepter's and others'", 0o755, []string{"notes.txt", "scepter.db"}, ""},
		{"lost+found only", 0o755, []string{"lost+found/"}, ""},
		{"a used data directory", 0o750, []string{"ca/", serveLockFile}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			for _, e := range tt.entries {
				p := filepath.Join(dir, e)
				if strings.HasSuffix(e, "/") {
					err := os.Mkdir(p, 0o700)
					if err != nil {
						t.Fatal(err)
					}
				} else if err := os.WriteFile(p, nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Chmod(dir, tt.mode); err != nil {
				t.Fatal(err)
			}
			err := secureDataDir(dir, slog.New(slog.DiscardHandler))
			fi, serr := os.Stat(dir)
			if serr != nil {
				t.Fatal(serr)
			}
			switch {
			case tt.refused == "" && (err != nil || fi.Mode().Perm() != 0o700):
				t.Errorf("err %v, mode %v; want it tightened to 0700", err, fi.Mode())
			case tt.refused != "" && (err == nil || !strings.Contains(err.Error(), tt.refused)):
				t.Errorf("err %v, want one saying %q", err, tt.refused)
			case tt.refused != "" && fi.Mode() != tt.mode|os.ModeDir:
				t.Errorf("mode %v, want it left at %v", fi.Mode(), tt.mode|os.ModeDir)
			}
		})
	}
}

// A data directory another user owns is refused, its mode untouched: its
// owner could replace what scepter keeps in it.
func TestSecureDataDirRefusesAnotherUsersDirectory(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a directory to another user")
	}
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	err := secureDataDir(dir, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "belongs to uid 65534") {
		t.Errorf("secureDataDir on a directory of uid 65534: %v, want it refused", err)
	}
	if m := dirMode(t, dir); m != 0o755 {
		t.Errorf("mode %04o, want 0755 left as it was", m)
	}
}

// A generated secret's file that is a symbolic link (to a config-managed
// file of the operator's) is held to the rules of a secret file a flag
// names: refused when others may change what it leads to, warned about
// when they may read it, its mode left as it is (r138 D1: it was read
// unchecked, a 0644 target too).
func TestSecureDataDirChecksALinkedSecret(t *testing.T) {
	for _, tc := range []struct {
		mode    os.FileMode
		refused string // in the error; "" for none
		warned  bool
	}{
		{0o600, "", false},
		{0o644, "", true},
		{0o640, "", true},
		{0o664, "group or others may change the secret", false},
		{0o646, "group or others may change the secret", false},
	} {
		t.Run(fmt.Sprintf("%04o", tc.mode), func(t *testing.T) {
			base := t.TempDir()
			dir := filepath.Join(base, "data")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			target := filepath.Join(base, "managed-challenge")
			if err := os.WriteFile(target, []byte("a managed challenge\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(target, tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, filepath.Join(dir, challengeFileName)); err != nil {
				t.Fatal(err)
			}
			var logb bytes.Buffer
			err := secureDataDir(dir, slog.New(slog.NewTextHandler(&logb, nil)))
			if tc.refused != "" {
				if err == nil || !strings.Contains(err.Error(), tc.refused) || !strings.Contains(err.Error(), target) {
					t.Fatalf("err %v, want it to say %q and name %s", err, tc.refused, target)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if warned := strings.Contains(logb.String(), "symbolic link to a file group or others may read"); warned != tc.warned {
				t.Errorf("log %q, want a warning: %v", logb.String(), tc.warned)
			}
			fi, err := os.Stat(target)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != tc.mode {
				t.Errorf("the link's target became %04o", fi.Mode().Perm())
			}
		})
	}
}
