package ca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest"
)

// decrypts: ra's key opens what is encrypted to ra's certificate.
func decrypts(t *testing.T, ra *pki.RA) bool {
	t.Helper()
	msg := []byte("challenge")
	ct, err := rsa.EncryptPKCS1v15(rand.Reader, ra.Cert.PublicKey.(*rsa.PublicKey), msg)
	if err != nil {
		t.Fatal(err)
	}
	pt, err := ra.Key.(crypto.Decrypter).Decrypt(rand.Reader, ct, nil)
	return err == nil && string(pt) == string(msg)
}

func hasRA(ras []*pki.RA, ra *pki.RA) bool {
	for _, r := range ras {
		if r.Cert.Equal(ra.Cert) {
			return true
		}
	}
	return false
}

func TestRenewRA(t *testing.T) {
	clock := pkitest.NewClock(t0)
	dir, a := newCA(t, InitOptions{}, clock)
	caDir := filepath.Join(dir, "ca")
	first := a.RA
	// 20 days before the RA's end.
	clock.Set(first.Cert.NotAfter.Add(-20 * day))

	old, renewed, err := RenewRA(dir, RenewRAOptions{}, clock)
	if err != nil {
		t.Fatal(err)
	}
	if !old.Cert.Equal(first.Cert) {
		t.Fatalf("retired %s, want the RA in service %s", old.Cert.SerialNumber, first.Cert.SerialNumber)
	}
	if pki.SamePublicKey(renewed.Cert.PublicKey, first.Cert.PublicKey) {
		t.Fatal("the renewed RA has the old key")
	}
	if err := renewed.Cert.CheckSignatureFrom(a.Issuer.Cert); err != nil {
		t.Fatalf("the renewed RA is not issued by the issuing CA: %v", err)
	}
	if want := clock.Now().Add(2 * year); renewed.Cert.NotAfter.Sub(want).Abs() > time.Minute {
		t.Errorf("renewed RA ends %s, want %s", renewed.Cert.NotAfter, want)
	}
	if !readCert(t, filepath.Join(caDir, RACertFile)).Equal(renewed.Cert) {
		t.Error("ra.crt is not the renewed RA")
	}
	retiredDir := filepath.Join(caDir, RetiredRADir, first.Cert.SerialNumber.Text(16))
	if !readCert(t, filepath.Join(retiredDir, RACertFile)).Equal(first.Cert) {
		t.Error("the old RA is not kept in retired-ra/")
	}
	if dots := dotEntries(t, caDir); len(dots) != 0 {
		t.Errorf("left behind: %v", dots)
	}

	// The running server's reload: the new RA serves, the old one only
	// decrypts.
	if err := a.Reload(clock.Now()); err != nil {
		t.Fatal(err)
	}
	if _, ra := a.Active(clock.Now()); !ra.Cert.Equal(renewed.Cert) || !decrypts(t, ra) {
		t.Fatalf("active RA %s after the reload, want the renewed %s", ra.Cert.SerialNumber, renewed.Cert.SerialNumber)
	}
	retired := a.RetiredRAs()
	if len(retired) != 1 || !retired[0].Cert.Equal(first.Cert) || !decrypts(t, retired[0]) || !hasRA(a.RAs(), first) {
		t.Fatalf("retired RAs %v: want the old RA, decrypting, among RAs()", retired)
	}
	// A start loads it too.
	b, _, err := LoadOrCreate(dir, InitOptions{}, clock)
	if err != nil {
		t.Fatal(err)
	}
	if !b.RA.Cert.Equal(renewed.Cert) || !hasRA(b.RetiredRAs(), first) {
		t.Fatal("a start does not load the renewed RA and the retired one")
	}

	// Once its certificate has expired, the old RA is dropped, its key
	// with it.
	clock.Set(first.Cert.NotAfter.Add(time.Second))
	if err := a.Reload(clock.Now()); err != nil {
		t.Fatal(err)
	}
	if len(a.RetiredRAs()) != 0 || hasRA(a.RAs(), first) {
		t.Fatal("the expired retired RA is still loaded")
	}
	if _, err := os.Stat(retiredDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the expired retired RA's directory is still there: %v", err)
	}
}

func TestRenewRARefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts InitOptions
		// at is when the renewal is tried, from the CA's creation.
		at   time.Duration
		tok  bool
		want error
	}{
		{name: "RA mode ca", opts: InitOptions{KeyType: keys.RSA2048, RAMode: RAModeCA}, want: ErrRAIsCA},
		{name: "issuing CA ends first", opts: InitOptions{IssuingValidity: year, RAValidity: 2 * year}, at: 300 * day, want: ErrRANotRenewable},
		{name: "keys in a token not given", opts: InitOptions{KeyType: keys.RSA2048}, tok: true, want: keys.ErrNoToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := pkitest.NewClock(t0)
			if tc.tok {
				tc.opts.Token, _ = caToken(t)
			}
			dir, _ := newCA(t, tc.opts, clock)
			clock.Advance(tc.at)
			before := readFileOrEmpty(filepath.Join(dir, "ca", RACertFile))
			_, _, err := RenewRA(dir, RenewRAOptions{}, clock)
			if !errors.Is(err, tc.want) {
				t.Fatalf("RenewRA: %v, want %v", err, tc.want)
			}
			if after := readFileOrEmpty(filepath.Join(dir, "ca", RACertFile)); after != before {
				t.Error("a refused renewal changed ra.crt")
			}
			if _, err := os.Stat(filepath.Join(dir, "ca", RetiredRADir)); !errors.Is(err, os.ErrNotExist) {
				t.Error("a refused renewal retired the RA")
			}
		})
	}
	t.Run("no CA", func(t *testing.T) {
		if _, _, err := RenewRA(t.TempDir(), RenewRAOptions{}, pkitest.NewClock(t0)); !errors.Is(err, ErrNoCA) {
			t.Fatalf("RenewRA: %v, want ErrNoCA", err)
		}
	})
}

func readFileOrEmpty(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// A renewal that stopped after the new key was installed, before its
// certificate, is finished by the next start.
func TestRenewRAInterruptedIsFinished(t *testing.T) {
	clock := pkitest.NewClock(t0)
	dir, a := newCA(t, InitOptions{}, clock)
	caDir := filepath.Join(dir, "ca")
	clock.Advance(day)
	_, renewed, err := RenewRA(dir, RenewRAOptions{}, clock)
	if err != nil {
		t.Fatal(err)
	}
	// As it was between the key and the certificate.
	building := filepath.Join(caDir, raNewPrefix+"x")
	if err := os.Mkdir(building, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := keys.WriteCertFile(filepath.Join(building, RACertFile), renewed.Cert); err != nil {
		t.Fatal(err)
	}
	if err := keys.WriteCertFile(filepath.Join(caDir, RACertFile), a.RA.Cert); err != nil {
		t.Fatal(err)
	}
	b, _, err := LoadOrCreate(dir, InitOptions{}, clock)
	if err != nil {
		t.Fatal(err)
	}
	if !b.RA.Cert.Equal(renewed.Cert) {
		t.Fatal("the interrupted renewal was not finished")
	}
}

func TestHSMRenewRA(t *testing.T) {
	tok, cfg := caToken(t)
	clock := pkitest.NewClock(t0)
	dir, a := newCA(t, InitOptions{Token: tok, KeyType: keys.RSA2048}, clock)
	caDir := filepath.Join(dir, "ca")
	clock.Advance(day)
	old, renewed, err := RenewRA(dir, RenewRAOptions{Token: tok}, clock)
	if err != nil {
		t.Fatal(err)
	}
	noFile(t, filepath.Join(caDir, RAKeyFile))
	if ref := refOf(t, filepath.Join(caDir, RAKeyRef)); !strings.HasPrefix(ref, "pkcs11:token="+cfg.TokenLabel+";object=scepter-ra-") {
		t.Errorf("renewed RA key %s, want a label scepter-ra-<id> of its own", ref)
	}
	retired := filepath.Join(caDir, RetiredRADir, old.Cert.SerialNumber.Text(16), RAKeyRef)
	if refOf(t, retired) == refOf(t, filepath.Join(caDir, RAKeyRef)) {
		t.Error("the retired RA names the new key")
	}
	if err := a.Reload(clock.Now()); err != nil {
		t.Fatal(err)
	}
	_, ra := a.Active(clock.Now())
	if !ra.Cert.Equal(renewed.Cert) || !decrypts(t, ra) || len(a.RetiredRAs()) != 1 || !decrypts(t, a.RetiredRAs()[0]) {
		t.Fatal("after the reload: want the renewed RA in service and the old one decrypting, both in the token")
	}
}

// An RA renewed on one node reaches another with export-keys and
// import-keys: the other node's RA in service is among the export's
// retired RAs, so its ra.crt and ra.key are replaced (another RA is still
// refused), and the old RA keeps decrypting there too.
func TestImportKeysCarriesARenewedRA(t *testing.T) {
	clock := pkitest.NewClock(t0)
	dirA, _ := newCA(t, InitOptions{}, clock)
	dirB := filepath.Join(t.TempDir(), "b")
	if _, err := ImportKeys(dirB, export(t, dirA, ExportKeysOptions{})); err != nil {
		t.Fatal(err)
	}
	b, _, err := LoadOrCreate(dirB, InitOptions{}, clock)
	if err != nil {
		t.Fatal(err)
	}
	old := b.RA

	// A node whose RA is another one altogether refuses the renewal.
	dirC := filepath.Join(t.TempDir(), "c")
	if _, err := ImportKeys(dirC, export(t, dirA, ExportKeysOptions{})); err != nil {
		t.Fatal(err)
	}
	clock.Advance(day)
	if _, _, err := RenewRA(dirC, RenewRAOptions{}, clock); err != nil {
		t.Fatal(err)
	}
	clock.Advance(day)
	_, renewed, err := RenewRA(dirA, RenewRAOptions{}, clock)
	if err != nil {
		t.Fatal(err)
	}
	x := export(t, dirA, ExportKeysOptions{})
	if _, err := ImportKeys(dirC, x); !errors.Is(err, keys.ErrKeyExists) && (err == nil || !strings.Contains(err.Error(), "other content")) {
		t.Fatalf("import of A's renewed RA into C, renewed apart: %v, want a refusal", err)
	}

	if _, err := ImportKeys(dirB, x); err != nil {
		t.Fatalf("import of the renewed RA: %v", err)
	}
	if err := b.Reload(clock.Now()); err != nil {
		t.Fatal(err)
	}
	if _, ra := b.Active(clock.Now()); !ra.Cert.Equal(renewed.Cert) || !decrypts(t, ra) {
		t.Fatal("node B does not serve the renewed RA after the import")
	}
	if retired := b.RetiredRAs(); len(retired) != 1 || !retired[0].Cert.Equal(old.Cert) || !decrypts(t, retired[0]) {
		t.Fatal("node B does not keep the old RA for decryption")
	}
	// Importing it again changes nothing.
	if res, err := ImportKeys(dirB, x); err != nil || len(res.Written) != 0 {
		t.Fatalf("second import: %+v, %v", res, err)
	}
}

// With SetRAReserve, the RA certificate that replaces a revoked one has
// its serial reserved, with the TBS the CA key signs, before it is signed:
// a reservation that fails leaves no new certificate (ReplaceRA fails and
// the next call tries again), and one that succeeds names the issuing CA,
// the new serial and the signed TBS. A taken serial is drawn again.
func TestReplaceRAReservesItsSerial(t *testing.T) {
	clock := pkitest.NewClock(t0)
	dir, a := newCA(t, InitOptions{}, clock)
	_, old := a.Active(clock.Now())

	a.SetRAReserve(func(context.Context, string, string, []byte) (bool, error) {
		return false, errors.New("the store is away")
	})
	if _, _, err := a.ReplaceRA(old.Cert, clock.Now()); err == nil || !strings.Contains(err.Error(), "the store is away") {
		t.Fatalf("ReplaceRA with a failing reservation: %v, want its error", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ca", RACertFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ra.crt after a failed reservation: %v, want none (nothing signed)", err)
	}

	type reservation struct {
		issuerID, serial string
		tbs              []byte
	}
	var got []reservation
	a.SetRAReserve(func(_ context.Context, issuerID, serial string, tbs []byte) (bool, error) {
		got = append(got, reservation{issuerID, serial, tbs})
		return len(got) == 1, nil // the first serial drawn is taken
	})
	if _, _, err := a.ReplaceRA(old.Cert, clock.Now()); err != nil {
		t.Fatalf("ReplaceRA once the store answers: %v", err)
	}
	_, cur := a.Active(clock.Now())
	if cur.Cert.Equal(old.Cert) {
		t.Fatal("the revoked RA is still active")
	}
	if len(got) != 2 || got[0].serial == got[1].serial {
		t.Fatalf("reservations: %+v, want a taken one and another serial", got)
	}
	r := got[1]
	if r.issuerID != a.Issuer.ID || r.serial != cur.Cert.SerialNumber.Text(16) || !bytes.Equal(r.tbs, cur.Cert.RawTBSCertificate) {
		t.Errorf("reservation %s/%s, want %s/%s with the new RA's TBS", r.issuerID, r.serial, a.Issuer.ID, cur.Cert.SerialNumber.Text(16))
	}
}

// ReplaceRA destroys a revoked RA's key and has a new RA issued in its
// place, under the reload lock: reloads running meanwhile (a server's
// periodic one) never find ra.crt without its key, and always leave an RA
// whose key is its certificate's. A certificate no directory holds any
// more (replaced already) only reloads.
func TestReplaceRAWhileReloading(t *testing.T) {
	clock := pkitest.NewClock(t0)
	dir, a := newCA(t, InitOptions{}, clock)
	caDir := filepath.Join(dir, "ca")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	stopped := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopped() // before t.TempDir's removal, when the test fails
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := a.Reload(clock.Now()); err != nil {
				t.Errorf("reload during a replacement: %v", err)
				return
			}
			if _, ra := a.Active(clock.Now()); !pki.SamePublicKey(ra.Key.Public(), ra.Cert.PublicKey) {
				t.Error("a reload left an RA whose key is not its certificate's")
				return
			}
		}
	})
	var replaced []*pki.RA
	replace := func() {
		t.Helper()
		_, old := a.Active(clock.Now())
		destroyed, key, err := a.ReplaceRA(old.Cert, clock.Now())
		if err != nil || !destroyed || key != filepath.Join(caDir, RAKeyFile) {
			t.Fatalf("ReplaceRA: destroyed %v, key %q, %v; want the key in %s destroyed", destroyed, key, err, caDir)
		}
		_, cur := a.Active(clock.Now())
		if cur.Cert.Equal(old.Cert) || pki.SamePublicKey(cur.Cert.PublicKey, old.Cert.PublicKey) {
			t.Fatalf("replacement %d: the revoked RA is still active", len(replaced)+1)
		}
		if !decrypts(t, cur) || cur.Cert.CheckSignatureFrom(a.Issuer.Cert) != nil {
			t.Fatal("the new RA does not decrypt, or is not issued by the issuing CA")
		}
		replaced = append(replaced, old)
	}
	for range 3 {
		replace()
	}
	stopped()
	// Back to back, no reload between them: the disk after the second
	// removal looks as it did before the first new RA was issued.
	replace()
	replace()
	if hasRA(a.RAs(), replaced[0]) || hasRA(a.RetiredRAs(), replaced[0]) {
		t.Error("a replaced RA is still loaded")
	}

	_, cur := a.Active(clock.Now())
	destroyed, key, err := a.ReplaceRA(replaced[0].Cert, clock.Now())
	if _, again := a.Active(clock.Now()); err != nil || destroyed || key != "" || again != cur {
		t.Errorf("ReplaceRA of an RA replaced already: destroyed %v, key %q, %v; want nothing done", destroyed, key, err)
	}
}
