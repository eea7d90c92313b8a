package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/admin"
	"github.com/scepter/scepter/internal/auth"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest/fixture"
)

// The secrets a start generates (challenge.txt, admin-password.txt) are
// 0600 when written, also over a file that was looser, and one found
// looser at a start is tightened, saying so (r123 observation).
func TestGeneratedSecretFilesAreOwnersAlone(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no mode bits")
	}
	for _, name := range []string{challengeFileName, adminPasswordFile} {
		for _, mode := range []fs.FileMode{0o644, 0o640, 0o604, 0o600} {
			dir := t.TempDir()
			os.Chmod(dir, 0o700)
			path := filepath.Join(dir, name)
			if err := os.WriteFile(path, []byte("secret\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			os.Chmod(path, mode)
			var logs bytes.Buffer
			if err := secureDataDir(dir, slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
				t.Fatalf("%s %04o: %v", name, mode, err)
			}
			if got := fileMode(t, path); got != 0o600 {
				t.Errorf("%s %04o: mode %04o after the start's check, want 0600", name, mode, got)
			}
			if said := strings.Contains(logs.String(), "secret's file was open to group or others; tightened it"); said != (mode != 0o600) {
				t.Errorf("%s %04o: log %q", name, mode, logs.String())
			}

			os.Chmod(path, mode)
			if err := writeSecretFile(path, []byte("another\n")); err != nil {
				t.Fatal(err)
			}
			if got := fileMode(t, path); got != 0o600 {
				t.Errorf("%s written over one of mode %04o: mode %04o, want 0600", name, mode, got)
			}
		}
	}
}

func fileMode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// The generated admin password's file goes with the password: removed
// with the user admin, by `admin user remove` (which says so) or the API,
// and at a start that finds it no longer opens the admin user (removed,
// or given another password, elsewhere). A start that then finds no user
// at all makes none: the console waits for one added by hand, as it did
// while the file stayed (r123 observation).
func TestAdminPasswordFileGoesWithItsUser(t *testing.T) {
	ctx := context.Background()
	start := func(t *testing.T, dir string) (stdout, stderr string) {
		t.Helper()
		out, errb, err := serveOnceWith(t, nil, "--data-dir", dir, "--listen", "127.0.0.1:0", "--est-listen", "127.0.0.1:0", "--challenge", "test")
		if err != nil {
			t.Fatalf("serve: %v\n%s", err, errb)
		}
		return out, errb
	}
	passwordFile := func(dir string) string { return filepath.Join(dir, adminPasswordFile) }
	exists := func(path string) bool { _, err := os.Stat(path); return err == nil }
	addUser := func(t *testing.T, dir, name string) {
		t.Helper()
		pw := filepath.Join(t.TempDir(), "pw")
		writeTestFile(t, pw, "a long enough password for "+name+"\n")
		if out, err := runCLI("admin", "user", "add", name, "--role", "admin", "--password-file", pw, "--data-dir", dir); err != nil {
			t.Fatalf("admin user add %s: %v\n%s", name, err, out)
		}
	}

	t.Run("admin user remove", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "data")
		start(t, dir)
		if !exists(passwordFile(dir)) {
			t.Fatal("no generated password file after the first start")
		}
		addUser(t, dir, "alice")
		out, err := runCLI("admin", "user", "remove", "admin", "--data-dir", dir)
		if err != nil {
			t.Fatalf("admin user remove: %v\n%s", err, out)
		}
		if want := "removed " + passwordFile(dir) + ", which held the user's generated password"; !strings.Contains(out, want) {
			t.Errorf("admin user remove said %q, want %q", out, want)
		}
		if exists(passwordFile(dir)) {
			t.Error("the removed user's generated password is still on disk")
		}
		// Another user's removal leaves a file alone.
		writeTestFile(t, passwordFile(dir), "kept\n")
		if out, err := runCLI("admin", "user", "remove", "alice", "--data-dir", dir); err != nil || strings.Contains(out, adminPasswordFile) || !exists(passwordFile(dir)) {
			t.Errorf("removing alice: %v %q, file there: %v", err, out, exists(passwordFile(dir)))
		}
		os.Remove(passwordFile(dir))
		// No user left: the next start makes none, and says so.
		out, _ = start(t, dir)
		if !strings.Contains(out, "no console user (the last one was removed)") || exists(passwordFile(dir)) {
			t.Errorf("a start after the last user was removed:\n%s\nfile made: %v", out, exists(passwordFile(dir)))
		}
	})

	t.Run("the API", func(t *testing.T) {
		p := fixture.New(t, fixture.Options{})
		log := slog.New(slog.DiscardHandler)
		f := &serveFlags{storeFlags: storeFlags{dataDir: p.Dir}}
		w, err := f.newWebAdmin(ctx, p.Store, admin.New(p.Store, p.Clock, log, nil, "default"), p.Service, p.Authority, nil, p.Clock, log)
		if err != nil {
			t.Fatal(err)
		}
		if w.password == "" || !exists(passwordFile(p.Dir)) {
			t.Fatal("no admin user made")
		}
		token, _, err := w.auth.NewToken(ctx, "t", pki.RoleAdmin, 0, auth.CLI("test"))
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest(http.MethodDelete, "/api/v1/users/admin", nil)
		req.TLS = &tls.ConnectionState{}
		req.Header.Set("Authorization", "Bearer "+token)
		mux := http.NewServeMux()
		for pattern, h := range w.api.Routes() {
			mux.Handle(pattern, h)
		}
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		if rec.Code != http.StatusNoContent {
			t.Fatalf("DELETE /api/v1/users/admin: %d %s", rec.Code, rec.Body)
		}
		if exists(passwordFile(p.Dir)) {
			t.Error("the removed user's generated password is still on disk")
		}
	})

	// removeElsewhere removes the user admin, its password file kept, as
	// another node's API leaves this node's file.
	removeElsewhere := func(t *testing.T, dir string) {
		t.Helper()
		kept, err := os.ReadFile(passwordFile(dir))
		if err != nil {
			t.Fatal(err)
		}
		if out, err := runCLI("admin", "user", "remove", "admin", "--data-dir", dir); err != nil {
			t.Fatalf("admin user remove: %v\n%s", err, out)
		}
		writeTestFile(t, passwordFile(dir), string(kept))
	}
	t.Run("elsewhere, found at a start", func(t *testing.T) {
		for _, c := range []struct {
			name   string
			change func(t *testing.T, dir string)
			why    string
		}{
			{"removed", func(t *testing.T, dir string) {
				addUser(t, dir, "alice")
				removeElsewhere(t, dir)
			}, "the user admin was removed"},
			{"another password", func(t *testing.T, dir string) {
				addUser(t, dir, "alice")
				removeElsewhere(t, dir)
				addUser(t, dir, "admin")
			}, "the user admin has another password now"},
			{"unchanged", func(t *testing.T, dir string) {}, ""},
		} {
			t.Run(c.name, func(t *testing.T) {
				dir := filepath.Join(t.TempDir(), "data")
				start(t, dir)
				c.change(t, dir)
				_, errb := start(t, dir)
				if gone := !exists(passwordFile(dir)); gone != (c.why != "") {
					t.Errorf("file removed: %v, want %v\n%s", gone, c.why != "", errb)
				}
				if c.why != "" && !strings.Contains(errb, c.why) {
					t.Errorf("the start's log does not say %q:\n%s", c.why, errb)
				}
			})
		}
	})
}
