package agent

import (
	"bytes"
	"context"
	"crypto/x509/pkix"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
)

// Two configurations that give one name to two certificates whose keys
// share a directory share a state directory: the second is refused, due or
// not, and the first's key and certificate stay as they are (r94 D2).
func TestOneNameOnTwoCertificatesInOneDirectory(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		// keyDir and certDir hold the keys and the certificates ("" the
		// fixture's directory).
		keyDir, certDir string
		// legacy: the state directory was made by an earlier version,
		// without the record of the paths it serves.
		legacy bool
	}{
		{name: "key and certificate of both in one directory"},
		{name: "keys of both in one private directory", keyDir: "private", certDir: "certs"},
		{name: "a state directory of an earlier version", legacy: true},
		{name: "a state directory of an earlier version, keys apart", keyDir: "private", certDir: "certs", legacy: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{})
			keyDir, certDir := filepath.Join(f.dir, tc.keyDir), filepath.Join(f.dir, tc.certDir)
			for _, d := range []string{keyDir, certDir} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			a := f.cert()
			move := func(from, to string) string {
				if from == to {
					return to
				}
				if err := os.Rename(from, to); err != nil {
					t.Fatal(err)
				}
				return to
			}
			a.KeyPath = move(a.KeyPath, filepath.Join(keyDir, "A.key"))
			a.CertPath = move(a.CertPath, filepath.Join(certDir, "A.pem"))

			// A is renewed, and so moved into the generations.
			f.clock.Set(f.first.NotAfter.Add(-time.Hour))
			if err := f.agent.RunOnce(ctx); err != nil || f.renewer.count() != 1 {
				t.Fatalf("A: err %v, %d renewals", err, f.renewer.count())
			}
			aPair := f.pair()
			if tc.legacy {
				if err := os.Remove(filepath.Join(keyDir, stateDirName, a.Name, bindingName)); err != nil {
					t.Fatal(err)
				}
			}

			// B: another configuration, the same name, its own files.
			bKey, err := keys.Generate(keys.P256)
			if err != nil {
				t.Fatal(err)
			}
			bCert := f.ca.issue(t, bKey.Public(), pkix.Name{CommonName: "device-B"}, nil, f.clock.Now(), 30*24*time.Hour)
			b := *a
			b.KeyPath, b.CertPath = filepath.Join(keyDir, "B.key"), filepath.Join(certDir, "B.pem")
			writePEM(t, b.KeyPath, 0o600, bKey)
			writePEM(t, b.CertPath, 0o644, nil, bCert)
			bKeyData, _ := os.ReadFile(b.KeyPath)
			cfg := *f.cfg
			cfg.Certificates = []Certificate{b}
			logs := &syncBuffer{}
			other := &Agent{Config: &cfg, Clock: f.agent.Clock, Renewers: f.agent.Renewers, Jitter: f.agent.Jitter, Sleep: f.agent.Sleep,
				Log: slog.New(slog.NewTextHandler(logs, nil))}

			want := `another [[certificate]] named \"dev\" uses ` + filepath.Join(keyDir, stateDirName, "dev") + " (for " + a.KeyPath
			intact := func(when string) {
				t.Helper()
				p := f.pair()
				if !pki.SamePublicKey(p.key.Public(), aPair.key.Public()) || !p.cert.Equal(aPair.cert) {
					t.Fatalf("%s: A's paths show %s, want A's renewed certificate", when, p.cert.Subject)
				}
				if got, _ := os.ReadFile(b.KeyPath); !bytes.Equal(got, bKeyData) {
					t.Errorf("%s: B's key was changed", when)
				}
				if fi, err := os.Lstat(b.KeyPath); err != nil || fi.Mode()&os.ModeSymlink != 0 {
					t.Errorf("%s: B's key is no longer its regular file (%v)", when, err)
				}
			}
			for _, due := range []bool{false, true} {
				when := "B not due"
				if due {
					when = "B due"
					f.clock.Set(bCert.NotAfter.Add(-time.Hour))
				}
				if err := other.RunOnce(ctx); err == nil {
					t.Fatalf("%s: B's run succeeded", when)
				}
				if !strings.Contains(logs.String(), want) {
					t.Errorf("%s: the log does not say %q:\n%s", when, want, logs.String())
				}
				if n := f.renewer.count(); n != 1 {
					t.Errorf("%s: %d renewals, want A's one (B's server is not asked)", when, n)
				}
				intact(when)
				var out bytes.Buffer
				st := other.Status()
				WriteStatus(&out, st, f.clock.Now())
				if st[0].Problem == nil || !strings.Contains(out.String(), "another [[certificate]] named") {
					t.Errorf("%s: status does not refuse:\n%s", when, out.String())
				}
			}
			// A goes on renewing its own.
			if err := f.agent.RunOnce(ctx); err != nil || f.renewer.count() != 2 {
				t.Fatalf("A afterwards: err %v, %d renewals", err, f.renewer.count())
			}
			if p := f.pair(); p.cert.Subject.CommonName != "device-1" {
				t.Errorf("A renewed %s", p.cert.Subject)
			}
		})
	}
}
