package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
)

// An OCSP responder revoked for keyCompromise does not travel with
// export-keys: an export made before the server replaced it leaves its
// key out, and an export made before the revocation, imported after the
// server destroyed the key, does not put it back.
func TestExportKeysLeavesOutRevokedResponder(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	serveArgs := []string{"--listen", "127.0.0.1:0", "--est-listen", "off", "--challenge", "test", "--data-dir", data}
	serve := func() {
		t.Helper()
		s := serveInProcess(t, nil, serveArgs...)
		if s.ended {
			t.Fatalf("serve: %v\n%s", s.err, s.errb.String())
		}
		s.stop()
	}
	serve()
	a, err := ca.Load(data, pki.SystemClock{})
	if err != nil {
		t.Fatal(err)
	}
	id := a.Issuer.ID[:32]
	revokedKey := responderDir + "/" + id + keys.KeyFileExt
	certs, err := keys.LoadCertFile(filepath.Join(data, responderDir, id+".crt"))
	if err != nil {
		t.Fatalf("the server made no responder: %v", err)
	}
	responder := certs[0]

	vars := map[string]string{keysPassphraseEnv: "correct horse battery"}
	out := t.TempDir()
	exportKeys := func(name string) (*ca.KeyExport, string) {
		t.Helper()
		file := filepath.Join(out, name)
		stdout, stderr, err := runCA(t, vars, data, "export-keys", "--out", file)
		if err != nil {
			t.Fatalf("export-keys: %v\n%s", err, stderr)
		}
		sealed, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		plain, _, err := keys.OpenPEM(sealed, keyExportPEMType, []byte(vars[keysPassphraseEnv]))
		if err != nil {
			t.Fatal(err)
		}
		x, err := ca.ParseKeyExport(plain)
		if err != nil {
			t.Fatal(err)
		}
		return x, stdout
	}
	older, _ := exportKeys("older")
	if !slices.Contains(older.Keys(), revokedKey) {
		t.Fatalf("control: the export before the revocation lacks %s (has %v), so the test shows nothing", revokedKey, older.Keys())
	}

	if o, err := runCLI("certs", "revoke", "--data-dir", data, "--reason", "keyCompromise", responder.SerialNumber.Text(16)); err != nil {
		t.Fatalf("certs revoke: %v\n%s", err, o)
	}
	// No server has run since: the key is still on disk, and stays out.
	x, stdout := exportKeys("revoked")
	if slices.Contains(x.Keys(), revokedKey) || slices.Contains(x.Keys(), strings.TrimSuffix(revokedKey, keys.KeyFileExt)+".crt") {
		t.Errorf("the export carries the revoked responder's key: %v", x.Keys())
	}
	if !strings.Contains(stdout, "Left out "+revokedKey) {
		t.Errorf("export-keys does not say it left the revoked responder out:\n%s", stdout)
	}

	// The server replaces the responder and destroys the revoked key;
	// the older export does not bring it back.
	serve()
	onDisk := filepath.Join(data, filepath.FromSlash(revokedKey))
	if _, err := os.Stat(onDisk); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the server kept the revoked responder's key: %v", err)
	}
	if o, err := runCLI("ca", "import-keys", "--data-dir", data, "--in", filepath.Join(out, "older"), "--passphrase-file", writePassFile(t, vars[keysPassphraseEnv])); err != nil {
		t.Fatalf("import-keys: %v\n%s", err, o)
	}
	if _, err := os.Stat(onDisk); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("import-keys of an older export put the revoked responder's key back: %v", err)
	}
}
