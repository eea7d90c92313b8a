package config

import (
	"os"
	"path/filepath"
	"testing"
)

// TestOrigins (r104 D4): ParseOrigins says where each setting not given on
// the command line came from, and Refusal names a refused setting so:
// its flag when given on the command line (or by default), its variable,
// or its key and file; only the message's leading flag is renamed, and
// only when it is a whole flag name.
func TestOrigins(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.toml")
	if err := os.WriteFile(file, []byte("listen = \"file:1\"\ndata_dir = \"/from/file\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fs, _, _, _ := newSet()
	env := map[string]string{"SCEPTER_CONFIG": file, "SCEPTER_LISTEN": "env:2"}
	origins, err := ParseOrigins(fs, []string{"--allow-insecure-des"}, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Origins{"config": {Env: "SCEPTER_CONFIG"}, "listen": {Env: "SCEPTER_LISTEN"}, "data-dir": {File: file, Key: "data_dir"}}
	if len(origins) != len(want) {
		t.Errorf("origins %v, want %v", origins, want)
	}
	for name, o := range want {
		if origins[name] != o {
			t.Errorf("origin of %s: %+v, want %+v", name, origins[name], o)
		}
	}

	for _, tt := range []struct{ msg, want string }{
		{"--data-dir is empty: pass the --data-dir the server uses", "config " + file + ": data_dir is empty: pass the --data-dir the server uses"},
		{`--listen "x": want HOST:PORT`, `SCEPTER_LISTEN "x": want HOST:PORT`},
		{"--listen: no port", "SCEPTER_LISTEN: no port"},
		{"--listen", "SCEPTER_LISTEN"},
		{"--config /x has mode 0666: run: chmod go-w /x", "SCEPTER_CONFIG /x has mode 0666: run: chmod go-w /x"},
		// Given on the command line: the flag stays.
		{"--allow-insecure-des must not be set", "--allow-insecure-des must not be set"},
		// Not a setting's whole name, or not leading: left as it is.
		{"--listen-port must be positive", "--listen-port must be positive"},
		{"--data-dir=x is refused", "--data-dir=x is refused"},
		{"the --data-dir is empty", "the --data-dir is empty"},
		{"--unknown must be positive", "--unknown must be positive"},
		{"no flag here", "no flag here"},
	} {
		if got := origins.Refusal(tt.msg); got != tt.want {
			t.Errorf("Refusal(%q) = %q, want %q", tt.msg, got, tt.want)
		}
	}
}
