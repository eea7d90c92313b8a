package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/ca"
)

// export-keys and import-keys on a data directory a server ran with, whose
// store they do not find (a node on PostgreSQL, run without its --config
// or --store as docs/deployment.md showed them), refuse (exit 2) naming
// the flags, rather than move CA keys with no audit record. They used to
// go on, saying "not recorded in the audit trail" and that 'scepter
// serve' refuses the data directory, which a node on PostgreSQL does not.
func TestKeyTransferRefusedWithoutTheStore(t *testing.T) {
	vars := map[string]string{keysPassphraseEnv: "correct horse battery"}
	withDB, _ := caDataDir(t, ca.InitOptions{})
	export := filepath.Join(t.TempDir(), "keys.pem")
	if _, errOut, err := runCA(t, vars, withDB, "export-keys", "--out", export); err != nil {
		t.Fatalf("export-keys from a data directory with its database: %v\n%s", err, errOut)
	}
	// A node on PostgreSQL: the CA, the public URL a server wrote, no
	// scepter.db.
	onPostgres := func(t *testing.T) string {
		dir, _ := caDataDir(t, ca.InitOptions{})
		if err := os.Remove(filepath.Join(dir, "scepter.db")); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, publicURLFile), []byte("http://127.0.0.1:8080\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	for _, tc := range []struct {
		name  string
		args  func(t *testing.T) []string
		wrote string // a file the refusal must not have written
	}{
		{"export-keys", func(t *testing.T) []string {
			return []string{"export-keys", "--out", filepath.Join(t.TempDir(), "out.pem")}
		}, "out.pem"},
		{"import-keys", func(t *testing.T) []string { return []string{"import-keys", "--in", export} }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := onPostgres(t)
			args := tc.args(t)
			stdout, stderr, err := runCA(t, vars, dir, args...)
			var usage usageError
			if !errors.As(err, &usage) {
				t.Fatalf("want a refusal (exit 2), got %v\nstdout: %s\nstderr: %s", err, stdout, stderr)
			}
			for _, want := range []string{"audit trail", "--config", "--store", "nothing was done"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("the refusal does not say %q: %v", want, err)
				}
			}
			if strings.Contains(err.Error(), "'scepter serve' refuses this data directory until then") {
				t.Errorf("the refusal claims serve refuses the data directory, untrue on PostgreSQL: %v", err)
			}
			if tc.wrote != "" {
				if _, err := os.Stat(args[len(args)-1]); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s was written: %v", args[len(args)-1], err)
				}
			}
			if strings.Contains(stdout, "Exported") || strings.Contains(stdout, "Imported") {
				t.Errorf("it went on:\n%s", stdout)
			}
		})
	}
}

// The export's hint for the other node carries the store flags it was
// given, so that the import there is recorded too.
func TestExportKeysHintCarriesTheStore(t *testing.T) {
	for _, tc := range []struct {
		sf   storeFlags
		want string
	}{
		{storeFlags{}, ""},
		{storeFlags{configFile: "/etc/scepter/scepter.toml"}, " --config /etc/scepter/scepter.toml"},
		{storeFlags{store: storeURL{"postgres://scepter:secret@db:5432/scepter"}}, " --store "},
	} {
		got := storeHint(&tc.sf)
		if tc.want == "" && got != "" || !strings.HasPrefix(got, tc.want) || strings.Contains(got, "secret") {
			t.Errorf("storeHint(%+v) = %q, want it to start with %q and show no password", tc.sf, got, tc.want)
		}
	}
}
