package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The banner names the NDES password page when it is on, as it names the
// console: where an MDM's "NDES admin URL" points, for which user and
// profile; without an HTTPS listener, that it answers loopback clients
// alone (r114 observation).
func TestBannerNamesTheNDESPage(t *testing.T) {
	for _, tt := range []struct {
		name     string
		estListn string
		want     []string
	}{
		{"over HTTPS", "127.0.0.1:0", []string{"NDES page:           https://127.0.0.1:", "/certsrv/mscep_admin/ (user mdm; its passwords enroll at profile default)"}},
		{"without an HTTPS listener", "off", []string{"NDES page:           http://127.0.0.1:", "/certsrv/mscep_admin/ (loopback clients only: --est-listen is off; user mdm"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			pw := filepath.Join(dir, "ndes-password")
			if err := os.WriteFile(pw, []byte("ndes-password-long-enough\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			srv := serveInProcess(t, nil, "--listen", "127.0.0.1:0", "--est-listen", tt.estListn, "--challenge", "test",
				"--data-dir", filepath.Join(dir, "data"), "--ndes-user", "mdm", "--ndes-password-file", pw)
			if srv.ended {
				t.Fatalf("serve stopped: %v\n%s\n%s", srv.err, srv.out.String(), srv.errb.String())
			}
			out := srv.out.String()
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("banner lacks %q:\n%s", w, out)
				}
			}
		})
	}
}
