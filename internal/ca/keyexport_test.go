package ca

import (
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pkitest"
)

// export round-trips a KeyExport through its encoding, as the file does.
func export(t *testing.T, dir string, opts ExportKeysOptions) *KeyExport {
	t.Helper()
	x, err := ExportKeys(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	b, err := x.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseKeyExport(b)
	if err != nil {
		t.Fatal(err)
	}
	return back
}

func paths(x *KeyExport) []string {
	var out []string
	for _, f := range x.Files {
		out = append(out, f.Path)
	}
	return out
}

func TestExportImportKeys(t *testing.T) {
	clock := pkitest.NewClock(t0)
	dirA, a := newCA(t, InitOptions{}, clock)
	// An OCSP responder key of node A, and junk of an interrupted write.
	if _, err := keys.Files(filepath.Join(dirA, "ocsp")).Create("resp", keys.P256); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dirA, "ca", ".next-new-123"), 0o700)

	x := export(t, dirA, ExportKeysOptions{ExtraDirs: []string{"ocsp", "missing"}})
	got := paths(x)
	for _, want := range []string{"ca/root.crt", "ca/issuing.crt", "ca/issuing.key", "ca/ra.crt", "ca/ra.key", "ocsp/resp.key"} {
		if !slices.Contains(got, want) {
			t.Errorf("export lacks %s (has %v)", want, got)
		}
	}
	for _, p := range got {
		if p == "ca/root.key" || strings.Contains(p, ".next-new") {
			t.Errorf("export holds %s", p)
		}
	}
	if x.Root != Fingerprint(a.Root) {
		t.Errorf("export of root %s, want %s", x.Root, Fingerprint(a.Root))
	}
	if withRoot := export(t, dirA, ExportKeysOptions{IncludeRoot: true}); !slices.Contains(paths(withRoot), "ca/root.key") {
		t.Error("IncludeRoot left root.key out")
	}

	// Into an empty data directory: the same CA loads there.
	dirB := filepath.Join(t.TempDir(), "b")
	res, err := ImportKeys(dirB, x)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Written) != len(x.Files) || len(res.Unchanged) != 0 {
		t.Errorf("import wrote %d of %d files", len(res.Written), len(x.Files))
	}
	for path, want := range map[string]os.FileMode{"": 0o700, "ca": 0o700, "ca/issuing.key": 0o600, "ca/ra.key": 0o600, "ocsp/resp.key": 0o600, "ca/issuing.crt": 0o644} {
		if got := perm(t, filepath.Join(dirB, path)); got != want {
			t.Errorf("%s has mode %04o, want %04o", path, got, want)
		}
	}
	b, created, err := LoadOrCreate(dirB, InitOptions{}, clock)
	if err != nil || created {
		t.Fatalf("B: created=%v %v", created, err)
	}
	if !b.Root.Equal(a.Root) || b.Issuer.ID != a.Issuer.ID || !b.RA.Cert.Equal(a.RA.Cert) {
		t.Fatal("B serves another CA")
	}
	leaf := issueLeaf(t, b.Issuer, "on-b", clock.Now(), day)
	if err := leaf.CheckSignatureFrom(a.Issuer.Cert); err != nil {
		t.Errorf("B's certificate does not verify under A's issuing CA: %v", err)
	}

	// Again: nothing to do.
	res, err = ImportKeys(dirB, x)
	if err != nil || len(res.Written) != 0 || len(res.Unchanged) != len(x.Files) {
		t.Errorf("second import: %v, wrote %v", err, res.Written)
	}

	// A rollover on A; B, running, picks the next CA up on its reload.
	if _, _, err := Rollover(dirA, RolloverOptions{SwitchAt: t0.Add(day)}, clock); err != nil {
		t.Fatal(err)
	}
	x2 := export(t, dirA, ExportKeysOptions{})
	res, err = ImportKeys(dirB, x2)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(res.Written, "ca/next/issuing.key") || slices.Contains(res.Written, "ca/issuing.key") {
		t.Errorf("import after the rollover wrote %v", res.Written)
	}
	if err := b.Reload(clock.Now()); err != nil {
		t.Fatal(err)
	}
	nextA, _, _ := LoadOrCreateNext(t, dirA, clock)
	if nb, _, ok := b.Next(clock.Now()); !ok || nb.ID != nextA {
		t.Fatalf("B did not load the imported next CA (ok=%v)", ok)
	}
	if dots := dotEntries(t, filepath.Join(dirB, "ca")); len(dots) > 0 {
		t.Errorf("temporary entries left: %v", dots)
	}

	// Another CA's data directory is refused, and nothing is written.
	dirC, _ := newCA(t, InitOptions{}, clock)
	before := snapshot(t, dirC)
	if _, err := ImportKeys(dirC, x); !errors.Is(err, ErrDifferentCA) {
		t.Errorf("import into another CA: %v, want ErrDifferentCA", err)
	}
	if after := snapshot(t, dirC); !slices.Equal(before, after) {
		t.Error("a refused import changed the data directory")
	}

	// A key of the same CA that is another key is refused, nothing written.
	dirD := filepath.Join(t.TempDir(), "d")
	if _, err := ImportKeys(dirD, x); err != nil {
		t.Fatal(err)
	}
	if err := keys.WriteKeyFile(filepath.Join(dirD, "ca", RAKeyFile), genKey(t, "rsa2048")); err != nil {
		t.Fatal(err)
	}
	before = snapshot(t, dirD)
	if _, err := ImportKeys(dirD, x); !errors.Is(err, keys.ErrKeyExists) {
		t.Errorf("import over another key: %v, want ErrKeyExists", err)
	}
	if after := snapshot(t, dirD); !slices.Equal(before, after) {
		t.Error("a refused import changed the data directory")
	}

	// The node's own OCSP responder key, another than the export's, is
	// kept: each node makes and replaces its own.
	dirE := filepath.Join(t.TempDir(), "e")
	if _, err := ImportKeys(dirE, x); err != nil {
		t.Fatal(err)
	}
	if err := keys.WriteKeyFile(filepath.Join(dirE, "ocsp", "resp.key"), genKey(t, "p256")); err != nil {
		t.Fatal(err)
	}
	before = snapshot(t, dirE)
	if res, err := ImportKeys(dirE, x); err != nil || !slices.Equal(res.Kept, []string{"ocsp/resp.key"}) || len(res.Written) != 0 {
		t.Errorf("import over the node's own responder key: kept %v, wrote %v, %v; want it kept", res.Kept, res.Written, err)
	}
	if after := snapshot(t, dirE); !slices.Equal(before, after) {
		t.Error("the import changed the node's own responder key")
	}
}

// LoadOrCreateNext returns the issuer ID of dir's next CA.
func LoadOrCreateNext(t *testing.T, dir string, clock *pkitest.Clock) (string, bool, error) {
	t.Helper()
	a, err := Load(dir, clock)
	if err != nil {
		t.Fatal(err)
	}
	n, _, ok := a.Next(clock.Now())
	if !ok {
		t.Fatal("no next CA")
	}
	return n.ID, ok, nil
}

// snapshot lists every file under dir with its content's length.
func snapshot(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			out = append(out, p+":"+string(b))
		}
		return nil
	})
	return out
}

func TestParseKeyExportRefusesBadPaths(t *testing.T) {
	for _, p := range []string{"../x", "/etc/passwd", "ca/../../x", "ca/.hidden", "ca//x", "ca\\x", ""} {
		b := []byte(`{"format":"` + KeyExportFormat + `","root":"x","files":[{"path":` + jsonString(p) + `,"mode":420,"data":""}]}`)
		if _, err := ParseKeyExport(b); err == nil {
			t.Errorf("path %q accepted", p)
		}
	}
	b := []byte(`{"format":"` + KeyExportFormat + `","root":"x","files":[{"path":"ca/issuing.pkcs11","mode":384,"data":""}]}`)
	if _, err := ParseKeyExport(b); err == nil {
		t.Error("a reference file accepted")
	}
	b = []byte(`{"format":"` + KeyExportFormat + `","root":"x","files":[{"path":"ca/issuing.key","mode":384,"data":""}]}`)
	if _, err := ParseKeyExport(b); err == nil {
		t.Error("a key file not marked as key accepted")
	}
}

func jsonString(s string) string {
	return `"` + strings.ReplaceAll(s, `\`, `\\`) + `"`
}

// A CA key file that does not hold its certificate's key (replaced by
// another) is refused by the export and by the import: the node would
// not start with it.
func TestExportImportRefuseMismatchedKey(t *testing.T) {
	clock := pkitest.NewClock(t0)
	dir, _ := newCA(t, InitOptions{}, clock)
	good := export(t, dir, ExportKeysOptions{})
	other, err := keys.Generate(keys.P256)
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.WriteKeyFile(filepath.Join(dir, "ca", "issuing.key"), other); err != nil {
		t.Fatal(err)
	}
	if _, err := ExportKeys(dir, ExportKeysOptions{}); err == nil || !strings.Contains(err.Error(), "does not hold the key of ca/issuing.crt") {
		t.Errorf("export of a mismatched key: %v", err)
	}
	// The same mismatch arriving in an export file.
	pemOther, err := (&keys.Dir{Path: filepath.Join(dir, "ca")}).ExportPEM("issuing")
	if err != nil {
		t.Fatal(err)
	}
	for i := range good.Files {
		if good.Files[i].Path == "ca/issuing.key" {
			good.Files[i].Data = pemOther
		}
	}
	if _, err := ImportKeys(filepath.Join(t.TempDir(), "b"), good); err == nil || !strings.Contains(err.Error(), "does not hold the key") {
		t.Errorf("import of a mismatched key: %v", err)
	}
}

// An export without the root key holds no copy of it either: one left in
// the data directory under another name, plain or encrypted, is refused.
func TestExportRefusesACopyOfTheRootKey(t *testing.T) {
	clock := pkitest.NewClock(t0)
	dir, _ := newCA(t, InitOptions{}, clock)
	rootKey, err := keys.LoadKeyFile(filepath.Join(dir, "ca", RootKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(dir, "ca", "copy.key")
	if err := keys.WriteKeyFile(copyPath, rootKey); err != nil {
		t.Fatal(err)
	}
	if _, err := ExportKeys(dir, ExportKeysOptions{}); err == nil || !strings.Contains(err.Error(), "ca/copy.key holds the root key") {
		t.Errorf("export with a plain copy of the root key: %v", err)
	}
	// Encrypted at the lowest count that reads back: the refusal reads
	// only the PEM type, never decrypts.
	enc, err := keys.MarshalEncryptedKeyPEMIterations(rand.Reader, rootKey, []byte("a long passphrase"), keys.MinPBKDF2Iterations)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(copyPath, enc, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ExportKeys(dir, ExportKeysOptions{}); err == nil || !strings.Contains(err.Error(), "ca/copy.key is an encrypted key") {
		t.Errorf("export with an encrypted copy of the root key: %v", err)
	}
	if _, err := ExportKeys(dir, ExportKeysOptions{IncludeRoot: true}); err != nil {
		t.Errorf("with --include-root: %v", err)
	}
	// A copy under a name that is no key file's.
	if err := os.Remove(copyPath); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"root-backup.pem", "root.key.orig"} {
		other := filepath.Join(dir, "ca", name)
		if err := keys.WriteKeyFile(other, rootKey); err != nil {
			t.Fatal(err)
		}
		if _, err := ExportKeys(dir, ExportKeysOptions{}); err == nil || !strings.Contains(err.Error(), "ca/"+name+" holds a private key") {
			t.Errorf("export with a copy of the root key in %s: %v", name, err)
		}
		if err := os.Remove(other); err != nil {
			t.Fatal(err)
		}
	}
}

// without returns x less the files under prefix.
func without(x *KeyExport, prefix string) *KeyExport {
	out := &KeyExport{Format: x.Format, Root: x.Root}
	for _, f := range x.Files {
		if !strings.HasPrefix(f.Path, prefix) {
			out.Files = append(out.Files, f)
		}
	}
	return out
}

// A node that missed a rollover's keys (two nodes of one CA; the rollover
// made and switched on node A only) follows its own recovery message:
// export-keys on A and import-keys on B brings B up to date, its current
// generation moving to previous/ as a promotion would. An export that
// would lose a generation B holds, an older export and one of another CA
// are still refused, with nothing written.
func TestImportKeysCatchesUpWithARollover(t *testing.T) {
	clock := pkitest.NewClock(t0)
	dirA, first := newCA(t, InitOptions{}, clock)
	dirB := filepath.Join(t.TempDir(), "b")
	withOCSP := ExportKeysOptions{ExtraDirs: []string{"ocsp"}}
	if _, err := ImportKeys(dirB, export(t, dirA, withOCSP)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreate(dirB, InitOptions{}, clock); err != nil {
		t.Fatal(err)
	}
	before := export(t, dirA, ExportKeysOptions{})
	// Each node makes its own OCSP responder key and certificate.
	for _, d := range []string{dirA, dirB} {
		if _, err := keys.Files(filepath.Join(d, "ocsp")).Create("resp", keys.P256); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "ocsp", "resp.crt"), []byte(d), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ownOCSP := snapshot(t, filepath.Join(dirB, "ocsp"))

	// rollover runs a rollover on A, switched and promoted there.
	rollover := func() *Authority {
		t.Helper()
		at := clock.Now().Add(10 * day)
		if _, _, err := Rollover(dirA, RolloverOptions{SwitchAt: at}, clock); err != nil {
			t.Fatal(err)
		}
		clock.Set(at.Add(time.Minute))
		a, _, err := LoadOrCreate(dirA, InitOptions{}, clock)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	// same checks that B loads as A does.
	same := func(a *Authority) {
		t.Helper()
		b, _, err := LoadOrCreate(dirB, InitOptions{}, clock)
		if err != nil {
			t.Fatalf("node B after the import: %v", err)
		}
		ai, ar := a.Active(clock.Now())
		bi, br := b.Active(clock.Now())
		if ai.ID != bi.ID || !ar.Cert.Equal(br.Cert) {
			t.Errorf("node B's current issuing CA %s, A's %s", bi.ID, ai.ID)
		}
		var ap, bp []string
		for _, i := range a.Previous() {
			ap = append(ap, i.ID)
		}
		for _, i := range b.Previous() {
			bp = append(bp, i.ID)
		}
		if !slices.Equal(ap, bp) {
			t.Errorf("node B's previous issuing CAs %v, A's %v", bp, ap)
		}
	}

	second := rollover()
	res, err := ImportKeys(dirB, export(t, dirA, withOCSP))
	if err != nil {
		t.Fatalf("import of the rolled-over CA: %v", err)
	}
	if !slices.Contains(res.Written, "ca/"+IssuingKeyFile) || !slices.Contains(res.Written, "ca/"+ChainFile) {
		t.Errorf("written %v, want the new current generation", res.Written)
	}
	if !slices.Equal(snapshot(t, filepath.Join(dirB, "ocsp")), ownOCSP) || !slices.Contains(res.Kept, "ocsp/resp.key") || !slices.Contains(res.Kept, "ocsp/resp.crt") {
		t.Errorf("node B's own OCSP responder files were not kept (kept %v)", res.Kept)
	}
	same(second)
	if prev := second.Previous(); len(prev) != 1 || prev[0].ID != first.Issuer.ID {
		t.Fatalf("A's previous issuing CAs %v, want the first", prev)
	}
	if left := dotEntries(t, filepath.Join(dirB, "ca")); len(left) != 0 {
		t.Errorf("temporary entries left in B's ca/: %v", left)
	}
	// Again: nothing to do.
	if res, err := ImportKeys(dirB, export(t, dirA, withOCSP)); err != nil || len(res.Written) != 0 {
		t.Errorf("a second import: wrote %v, %v; want nothing", res.Written, err)
	}

	third := rollover()
	full := export(t, dirA, withOCSP)
	other, _ := newCA(t, InitOptions{}, clock)
	for _, tc := range []struct {
		name string
		x    *KeyExport
		want string
	}{
		{"one that lacks a previous generation of B", without(full, "ca/"+PreviousDir+"/"+first.Issuer.ID+"/"), "lacks the previous issuing CA"},
		{"an older one", before, "move " + filepath.Join(dirB, "ca") + " aside"},
		{"another CA's", export(t, other, ExportKeysOptions{}), "different CA"},
	} {
		snap := snapshot(t, dirB)
		if _, err := ImportKeys(dirB, tc.x); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("import of %s: %v, want %q", tc.name, err, tc.want)
		}
		if !slices.Equal(snap, snapshot(t, dirB)) {
			t.Errorf("import of %s changed node B's data directory", tc.name)
		}
	}
	if _, err := ImportKeys(dirB, full); err != nil {
		t.Fatalf("import after a second rollover: %v", err)
	}
	same(third)
}
