package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A restore run with --config prints the serve command with that
// --config: started without it, serve would listen and issue with the
// defaults, not the site's settings (r115 D6).
func TestStoreRestoreNextKeepsTheConfig(t *testing.T) {
	dir, _ := storeTestDir(t, "a1")
	bk := filepath.Join(t.TempDir(), "bk.db")
	if out, err := runCLI("store", "backup", "--data-dir", dir, "--out", bk); err != nil {
		t.Fatalf("store backup: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		name   string
		config bool
		want   string
	}{
		{"with --config", true, "Next: start scepter serve --data-dir " + dir + " --config " + filepath.Join(dir, "site.toml") + ".\n"},
		{"without", false, "Next: start scepter serve --data-dir " + dir + ".\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"store", "restore", "--in", bk}
			if tc.config {
				cfg := filepath.Join(dir, "site.toml")
				if err := os.WriteFile(cfg, []byte(fmt.Sprintf("data_dir = %q\n", dir)), 0o600); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--config", cfg)
			} else {
				args = append(args, "--data-dir", dir)
			}
			out, err := runCLI(args...)
			if err != nil {
				t.Fatalf("store restore: %v\n%s", err, out)
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("store restore says:\n%s\nwant %q", out, tc.want)
			}
		})
	}
}
