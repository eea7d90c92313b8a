package ca

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest"
)

func perm(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestLoadOrCreateCreatesThenReloads(t *testing.T) {
	dir := t.TempDir()
	a, created, err := LoadOrCreate(dir, InitOptions{}, fixedClock{t0})
	if err != nil {
		t.Fatal(err)
	}
	if !created {
		t.Fatal("created = false on an empty directory")
	}
	caDir := filepath.Join(dir, "ca")
	if m := perm(t, caDir); m != 0o700 {
		t.Errorf("ca dir mode %o, want 700", m)
	}
	for _, f := range []string{RootKeyFile, IssuingKeyFile, RAKeyFile} {
		if m := perm(t, filepath.Join(caDir, f)); m != 0o600 {
			t.Errorf("%s mode %o, want 600", f, m)
		}
	}
	for _, f := range []string{RootCertFile, IssuingCertFile, RACertFile, ChainFile} {
		if m := perm(t, filepath.Join(caDir, f)); m != 0o644 {
			t.Errorf("%s mode %o, want 644", f, m)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("%s holds %d entries, want only ca/ (temporary directory left behind?)", dir, len(entries))
	}
	chain, err := keys.LoadCertFile(filepath.Join(caDir, ChainFile))
	if err != nil || len(chain) != 2 || !chain[0].Equal(a.Issuer.Cert) || !chain[1].Equal(a.Root) {
		t.Errorf("chain.pem is not issuing CA then root: %v", err)
	}

	b, created, err := LoadOrCreate(dir, InitOptions{}, fixedClock{t0.Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if created {
		t.Error("created = true on reload")
	}
	for name, pair := range map[string][2]*x509.Certificate{
		"root": {a.Root, b.Root}, "issuing": {a.Issuer.Cert, b.Issuer.Cert}, "ra": {a.RA.Cert, b.RA.Cert},
	} {
		if !pair[0].Equal(pair[1]) {
			t.Errorf("%s certificate changed on reload", name)
		}
	}
	if a.RootFingerprint() != b.RootFingerprint() || a.Issuer.ID != b.Issuer.ID {
		t.Error("fingerprint or issuer ID changed on reload")
	}
	sum := sha256.Sum256(a.Root.Raw)
	if want := "sha256:" + hex.EncodeToString(sum[:]); a.RootFingerprint() != want {
		t.Errorf("RootFingerprint = %s, want %s", a.RootFingerprint(), want)
	}
	if len(a.IgnoredOptions(InitOptions{})) != 0 {
		t.Errorf("IgnoredOptions(defaults) = %v", a.IgnoredOptions(InitOptions{}))
	}
	// A removed chain.pem is rewritten.
	os.Remove(filepath.Join(caDir, ChainFile))
	if _, _, err := LoadOrCreate(dir, InitOptions{}, fixedClock{t0}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(caDir, ChainFile)); err != nil {
		t.Error("chain.pem not rewritten")
	}
}

func TestLoadOrCreateKeyTypes(t *testing.T) {
	for _, kt := range keys.KeyTypes {
		t.Run(kt, func(t *testing.T) {
			t.Parallel()
			opts := InitOptions{KeyType: kt, Organization: "Example Corp", RootValidity: 5 * year, IssuingValidity: 3 * year, RAValidity: year}
			a, created, err := LoadOrCreate(t.TempDir(), opts, fixedClock{t0})
			if err != nil || !created {
				t.Fatalf("created=%v err=%v", created, err)
			}
			if got := keys.KeyTypeOf(a.Root.PublicKey); got != kt {
				t.Errorf("root key %s, want %s", got, kt)
			}
			if got := keys.KeyTypeOf(a.Issuer.Cert.PublicKey); got != kt {
				t.Errorf("issuing key %s, want %s", got, kt)
			}
			checkCAShape(t, a, "Example Corp")
			if got := a.Issuer.Cert.SignatureAlgorithm; got != a.Issuer.prep.sigAlg {
				t.Errorf("issuing CA signed with %v, want the root key's algorithm %v", got, a.Issuer.prep.sigAlg)
			}
			if !a.Root.NotAfter.Equal(t0.Add(5 * year)) {
				t.Errorf("root NotAfter %v", a.Root.NotAfter)
			}
			if ig := a.IgnoredOptions(opts); len(ig) != 0 {
				t.Errorf("IgnoredOptions after creation: %v", ig)
			}
		})
	}
}

// checkCAShape checks the root, issuing CA and separate RA certificates.
func checkCAShape(t *testing.T, a *Authority, org string) {
	t.Helper()
	r, i, ra := a.Root, a.Issuer.Cert, a.RA.Cert
	if !r.IsCA || !r.BasicConstraintsValid || r.MaxPathLen != 1 || r.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Errorf("root: IsCA=%v pathlen=%d ku=%b", r.IsCA, r.MaxPathLen, r.KeyUsage)
	}
	if err := r.CheckSignatureFrom(r); err != nil {
		t.Errorf("root not self-signed: %v", err)
	}
	if !i.IsCA || i.MaxPathLen != 0 || !i.MaxPathLenZero || i.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign|x509.KeyUsageDigitalSignature {
		t.Errorf("issuing: IsCA=%v pathlen=%d/%v ku=%b", i.IsCA, i.MaxPathLen, i.MaxPathLenZero, i.KeyUsage)
	}
	if !bytes.Equal(i.AuthorityKeyId, r.SubjectKeyId) || len(i.SubjectKeyId) != 20 || len(r.SubjectKeyId) != 20 {
		t.Error("issuing SKI/AKI")
	}
	for _, c := range []*x509.Certificate{r, i, ra} {
		if c.SerialNumber.Sign() <= 0 || len(c.SerialNumber.Bytes()) > 16 /* 128 bits */ || c.SerialNumber.BitLen() < 64 {
			t.Errorf("%s: serial %x", c.Subject, c.SerialNumber)
		}
		if len(c.Subject.Organization) != 1 || c.Subject.Organization[0] != org {
			t.Errorf("%s: organization %v", c.Subject, c.Subject.Organization)
		}
	}
	if !strings.HasPrefix(r.Subject.CommonName, "scepter Root CA ") || !strings.HasPrefix(i.Subject.CommonName, "scepter Issuing CA ") {
		t.Errorf("names %q, %q", r.Subject.CommonName, i.Subject.CommonName)
	}
	if a.RA.IsCA {
		t.Fatal("RA mode is ca, want separate")
	}
	if _, ok := ra.PublicKey.(*rsa.PublicKey); !ok || keys.KeyTypeOf(ra.PublicKey) != "rsa2048" {
		t.Errorf("RA key %s, want rsa2048", keys.KeyTypeOf(ra.PublicKey))
	}
	if ra.IsCA || ra.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment || len(ra.ExtKeyUsage) != 0 || len(ra.UnknownExtKeyUsage) != 0 {
		t.Errorf("RA: IsCA=%v ku=%b eku=%v", ra.IsCA, ra.KeyUsage, ra.ExtKeyUsage)
	}
	if a.RA.Decrypter() == nil {
		t.Error("RA key is not a crypto.Decrypter")
	}
	roots := x509.NewCertPool()
	roots.AddCert(r)
	inter := x509.NewCertPool()
	inter.AddCert(i)
	if _, err := ra.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: t0, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Errorf("RA does not chain to the root: %v", err)
	}
	if len(a.RA.Chain) != 3 || !a.RA.Chain[0].Equal(ra) || !a.RA.Chain[1].Equal(i) || !a.RA.Chain[2].Equal(r) {
		t.Error("RA chain is not RA, issuing, root")
	}
	if len(a.Issuer.Chain) != 2 || !a.Issuer.Chain[1].Equal(r) {
		t.Error("issuer chain is not issuing, root")
	}
	if got, ok := a.IssuerByID(a.Issuer.ID); !ok || got != a.Issuer {
		t.Error("IssuerByID(current) failed")
	}
	if _, ok := a.IssuerByID("00"); ok {
		t.Error("IssuerByID(unknown) succeeded")
	}
	if is := a.Issuers(); len(is) != 1 || is[0] != a.Issuer {
		t.Error("Issuers() is not [current]")
	}
}

func TestRAModeCA(t *testing.T) {
	t.Run("rsa", func(t *testing.T) {
		dir := t.TempDir()
		a, _, err := LoadOrCreate(dir, InitOptions{KeyType: "rsa2048", RAMode: RAModeCA}, fixedClock{t0})
		if err != nil {
			t.Fatal(err)
		}
		if !a.RA.IsCA || !a.RA.Cert.Equal(a.Issuer.Cert) || a.RA.Decrypter() == nil {
			t.Fatal("the issuing CA does not act as RA")
		}
		if len(a.RA.Chain) != 2 || !a.RA.Chain[1].Equal(a.Root) {
			t.Error("RA chain is not issuing, root")
		}
		if _, err := os.Stat(filepath.Join(dir, "ca", RACertFile)); err == nil {
			t.Error("ra.crt created in mode ca")
		}
		// The RA mode is the CA's, recorded when it was made: a start
		// with another one keeps it and says so.
		b, _, err := LoadOrCreate(dir, InitOptions{RAMode: RAModeSeparate}, fixedClock{t0.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if !b.RA.IsCA {
			t.Fatal("a start with RA mode separate replaced the CA as RA")
		}
		if _, err := os.Stat(filepath.Join(dir, "ca", RACertFile)); err == nil {
			t.Error("ra.crt created by a start with RA mode separate")
		}
		if ign := strings.Join(b.IgnoredOptions(InitOptions{RAMode: RAModeSeparate}), "\n"); !strings.Contains(ign, `RA mode "separate" ignored`) || !strings.Contains(ign, "rollover") {
			t.Errorf("IgnoredOptions = %q, want the RA mode, pointing at a rollover", ign)
		}
		if ign := b.IgnoredOptions(InitOptions{RAMode: RAModeCA}); len(ign) != 0 {
			t.Errorf("IgnoredOptions with the CA's own mode = %q", ign)
		}
	})
	t.Run("p256 refused", func(t *testing.T) {
		dir := t.TempDir()
		_, _, err := LoadOrCreate(dir, InitOptions{KeyType: "p256", RAMode: RAModeCA}, fixedClock{t0})
		if err == nil || !strings.Contains(err.Error(), "needs an RSA CA key") || !strings.Contains(err.Error(), `"separate"`) {
			t.Fatalf("err = %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, "ca")); err == nil {
			t.Error("something was created")
		}
		// An existing EC CA keeps its separate RA when started in mode ca.
		a, _, err := LoadOrCreate(dir, InitOptions{KeyType: "p256"}, fixedClock{t0})
		if err != nil {
			t.Fatal(err)
		}
		b, _, err := LoadOrCreate(dir, InitOptions{RAMode: RAModeCA}, fixedClock{t0})
		if err != nil || b.RA.IsCA || !b.RA.Cert.Equal(a.RA.Cert) {
			t.Fatalf("a p256 CA started in mode ca: %v (RA is CA: %v)", err, err == nil && b.RA.IsCA)
		}
		// A hand-edited ra-mode that the key cannot follow is refused.
		if err := os.WriteFile(filepath.Join(dir, "ca", RAModeFile), []byte("ca\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, _, err = LoadOrCreate(dir, InitOptions{}, fixedClock{t0})
		if err == nil || !strings.Contains(err.Error(), "existing CA key is p256") {
			t.Fatalf("a p256 CA recorded in mode ca: err = %v", err)
		}
	})
}

func TestLoadOrCreateOptions(t *testing.T) {
	for _, tt := range []struct {
		opts InitOptions
		want string
	}{
		{InitOptions{KeyType: "rsa1024"}, "unknown CA key type"},
		{InitOptions{RAMode: "both"}, "unknown RA mode"},
		{InitOptions{RootValidity: -time.Hour}, "positive"},
	} {
		if _, _, err := LoadOrCreate(t.TempDir(), tt.opts, fixedClock{t0}); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: err = %v, want %q", tt.opts, err, tt.want)
		}
	}
	dir := t.TempDir()
	a, _, err := LoadOrCreate(dir, InitOptions{}, fixedClock{t0})
	if err != nil {
		t.Fatal(err)
	}
	ig := a.IgnoredOptions(InitOptions{KeyType: "rsa2048", Organization: "Other", RootValidity: 2 * year, RAValidity: 2 * year})
	if len(ig) != 3 || !strings.Contains(ig[0], "p256") || !strings.Contains(ig[1], "Other") || !strings.Contains(ig[2], "root validity") {
		t.Errorf("IgnoredOptions = %q", ig)
	}
	// Reloading with other options keeps the CA.
	b, created, err := LoadOrCreate(dir, InitOptions{KeyType: "rsa2048", Organization: "Other"}, fixedClock{t0})
	if err != nil || created || !b.Root.Equal(a.Root) {
		t.Fatalf("reload with other options: created=%v err=%v", created, err)
	}
}

// Each case damages a fresh CA and expects LoadOrCreate to refuse it clearly.
func TestLoadOrCreateRefusesBrokenCA(t *testing.T) {
	other := t.TempDir()
	if _, _, err := LoadOrCreate(other, InitOptions{}, fixedClock{t0}); err != nil {
		t.Fatal(err)
	}
	otherCA := filepath.Join(other, "ca")
	cp := func(t *testing.T, from, to string) {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name   string
		damage func(t *testing.T, caDir string)
		now    time.Time
		want   string
	}{
		{"swapped keys", func(t *testing.T, d string) {
			cp(t, filepath.Join(d, RootKeyFile), filepath.Join(d, IssuingKeyFile))
		}, t0, "issuing.key does not match issuing.crt"},
		{"corrupted key", func(t *testing.T, d string) {
			os.WriteFile(filepath.Join(d, IssuingKeyFile), []byte("-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----\n"), 0o600)
		}, t0, "issuing.key"},
		{"corrupted certificate", func(t *testing.T, d string) {
			os.WriteFile(filepath.Join(d, RootCertFile), []byte("garbage"), 0o644)
		}, t0, "root.crt"},
		{"issuing CA of another installation", func(t *testing.T, d string) {
			cp(t, filepath.Join(otherCA, IssuingCertFile), filepath.Join(d, IssuingCertFile))
			cp(t, filepath.Join(otherCA, IssuingKeyFile), filepath.Join(d, IssuingKeyFile))
		}, t0, "does not chain to root.crt"},
		{"RA of another installation", func(t *testing.T, d string) {
			cp(t, filepath.Join(otherCA, RACertFile), filepath.Join(d, RACertFile))
			cp(t, filepath.Join(otherCA, RAKeyFile), filepath.Join(d, RAKeyFile))
		}, t0, "was not issued by issuing.crt"},
		{"RA key not RSA", func(t *testing.T, d string) {
			os.Remove(filepath.Join(d, RACertFile))
			keys.WriteKeyFile(filepath.Join(d, RAKeyFile), genKey(t, "p256"))
		}, t0, "must be an RSA key"},
		// A missing root.key is fine (see TestLoadNeverReadsRootKey).
		{"missing root certificate", func(t *testing.T, d string) {
			os.Remove(filepath.Join(d, RootCertFile))
		}, t0, "incomplete CA"},
		{"ra.crt without ra.key", func(t *testing.T, d string) {
			os.Remove(filepath.Join(d, RAKeyFile))
		}, t0, "ra.crt exists without ra.key"},
		{"two certificates in root.crt", func(t *testing.T, d string) {
			b, _ := os.ReadFile(filepath.Join(d, ChainFile))
			os.WriteFile(filepath.Join(d, RootCertFile), b, 0o644)
		}, t0, "want exactly one"},
		{"root expired", nil, t0.Add(21 * year), "root.crt expired"},
		{"issuing CA expired", nil, t0.Add(11 * year), "issuing.crt expired"},
		{"RA expired", nil, t0.Add(3 * year), "remove ra.crt and ra.key"},
		{"clock before creation", nil, t0.Add(-48 * time.Hour), "not valid before"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, _, err := LoadOrCreate(dir, InitOptions{}, fixedClock{t0}); err != nil {
				t.Fatal(err)
			}
			if tt.damage != nil {
				tt.damage(t, filepath.Join(dir, "ca"))
			}
			_, created, err := LoadOrCreate(dir, InitOptions{}, fixedClock{tt.now})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
			if created {
				t.Error("created = true")
			}
		})
	}
}

func TestLoadOrCreateRenewsRA(t *testing.T) {
	dir := t.TempDir()
	caDir := filepath.Join(dir, "ca")
	a, _, err := LoadOrCreate(dir, InitOptions{}, fixedClock{t0})
	if err != nil {
		t.Fatal(err)
	}
	// ra.crt removed (or never written): the existing RA key is certified again.
	os.Remove(filepath.Join(caDir, RACertFile))
	b, _, err := LoadOrCreate(dir, InitOptions{}, fixedClock{t0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if b.RA.Cert.Equal(a.RA.Cert) || !pki.SamePublicKey(b.RA.Cert.PublicKey, a.RA.Cert.PublicKey) {
		t.Error("want a new RA certificate for the same key")
	}
	// Both removed after expiry: a new key and certificate.
	later := t0.Add(3 * year)
	os.Remove(filepath.Join(caDir, RACertFile))
	os.Remove(filepath.Join(caDir, RAKeyFile))
	c, _, err := LoadOrCreate(dir, InitOptions{}, fixedClock{later})
	if err != nil {
		t.Fatal(err)
	}
	if pki.SamePublicKey(c.RA.Cert.PublicKey, a.RA.Cert.PublicKey) || !c.RA.Cert.NotAfter.After(later) {
		t.Error("want a new RA key valid after the old one expired")
	}
	if m := perm(t, filepath.Join(caDir, RAKeyFile)); m != 0o600 {
		t.Errorf("new ra.key mode %o", m)
	}
}

func TestLoadOrCreateRefusesForeignDir(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "ca"), 0o700)
	os.WriteFile(filepath.Join(dir, "ca", "notes.txt"), []byte("x"), 0o600)
	_, _, err := LoadOrCreate(dir, InitOptions{}, fixedClock{t0})
	if err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("err = %v", err)
	}
	// An existing empty ca/ is fine.
	dir2 := t.TempDir()
	os.MkdirAll(filepath.Join(dir2, "ca"), 0o700)
	if _, created, err := LoadOrCreate(dir2, InitOptions{}, fixedClock{t0}); err != nil || !created {
		t.Fatalf("empty ca/: created=%v err=%v", created, err)
	}
}

func TestCANamesDiffer(t *testing.T) {
	a, b := testCA(t, "p256"), func() *Authority {
		x, _, err := LoadOrCreate(t.TempDir(), InitOptions{}, fixedClock{t0})
		if err != nil {
			t.Fatal(err)
		}
		return x
	}()
	if a.Root.Subject.String() == b.Root.Subject.String() || a.Issuer.Cert.Subject.String() == b.Issuer.Cert.Subject.String() {
		t.Error("two installations share a CA name")
	}
	if slices.Equal(a.Root.SerialNumber.Bytes(), b.Root.SerialNumber.Bytes()) {
		t.Error("same root serial")
	}
}

// wrappedKey stands for a key that another implementation operates
// (serve's OpenSSL one): a Signer and Decrypter of its own type.
type wrappedKey struct {
	crypto.Decrypter
	signer crypto.Signer
}

func (k wrappedKey) Sign(r io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	return k.signer.Sign(r, d, o)
}

// WrapKey gets the issuing CA's and the RA's keys, on the first load and
// on a reload, and the authority uses what it returns; a key that does not
// match is not used.
func TestWrapKey(t *testing.T) {
	for _, mode := range []string{RAModeSeparate, RAModeCA} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			var wrapped []string
			wrap := func(k crypto.Signer) crypto.Signer {
				wrapped = append(wrapped, keys.KeyTypeOf(k.Public()))
				if d, ok := k.(crypto.Decrypter); ok {
					return wrappedKey{Decrypter: d, signer: k}
				}
				return k
			}
			a, _, err := LoadOrCreate(dir, InitOptions{KeyType: "rsa2048", RAMode: mode, WrapKey: wrap}, fixedClock{t0})
			if err != nil {
				t.Fatal(err)
			}
			want := []string{"rsa2048", "rsa2048"}
			if mode == RAModeCA {
				want = want[:1]
			}
			if !slices.Equal(wrapped, want) {
				t.Errorf("WrapKey got %v, want %v", wrapped, want)
			}
			if _, ok := a.Issuer.Signer.(wrappedKey); !ok {
				t.Errorf("issuer key %T, not the wrapped one", a.Issuer.Signer)
			}
			if _, ok := a.RA.Key.(wrappedKey); !ok || a.RA.Decrypter() == nil {
				t.Errorf("RA key %T, not the wrapped one", a.RA.Key)
			}
			// A rollover made elsewhere: the reload wraps the next keys.
			if _, _, err := Rollover(dir, RolloverOptions{SwitchAt: t0.Add(240 * time.Hour)}, fixedClock{t0}); err != nil {
				t.Fatal(err)
			}
			wrapped = nil
			if err := a.Reload(t0); err != nil {
				t.Fatal(err)
			}
			if len(wrapped) < len(want) {
				t.Errorf("on reload WrapKey got %v, want at least %v", wrapped, want)
			}
			iss, ra, ok := a.Next(t0)
			if !ok {
				t.Fatal("no next CA after the reload")
			}
			if _, ok := iss.Signer.(wrappedKey); !ok {
				t.Errorf("next issuer key %T, not the wrapped one", iss.Signer)
			}
			if _, ok := ra.Key.(wrappedKey); !ok {
				t.Errorf("next RA key %T, not the wrapped one", ra.Key)
			}
		})
	}
	t.Run("another key", func(t *testing.T) {
		other, err := keys.Generate("p256")
		if err != nil {
			t.Fatal(err)
		}
		a, _, err := LoadOrCreate(t.TempDir(), InitOptions{WrapKey: func(crypto.Signer) crypto.Signer { return other }}, fixedClock{t0})
		if err != nil {
			t.Fatal(err)
		}
		if a.Issuer.Signer == other || a.RA.Key == other {
			t.Error("a key of another public key was used")
		}
	})
}

// A CA whose creation the server cannot record (its ca.initialized event:
// a full disk at the first start, r78) is removed, keys and all, so that
// the next start makes and records a new one rather than taking up a CA
// the trail never saw made.
func TestDiscardCreatedRemovesTheCA(t *testing.T) {
	clock := pkitest.NewClock(t0)
	opts := InitOptions{GenerateKey: pooledKeys()}
	dir, first := newCA(t, opts, clock)
	cause := errors.New("audit: the disk is full")
	err := DiscardCreated(dir, opts, cause)
	if !errors.Is(err, cause) || !strings.Contains(err.Error(), "removed, unrecorded") || strings.Contains(err.Error(), "destroyed") {
		t.Fatalf("DiscardCreated: %v", err)
	}
	noFile(t, filepath.Join(dir, "ca"))
	if left, _ := filepath.Glob(filepath.Join(dir, ".ca-*")); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
	second, created, err := LoadOrCreate(dir, opts, clock)
	if err != nil || !created {
		t.Fatalf("the next start: created=%v %v", created, err)
	}
	if second.Root.Equal(first.Root) {
		t.Error("the next start took up the discarded root")
	}
}
