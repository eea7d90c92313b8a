package health_test

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/health"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/keys/softhsmtest"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest"
	"github.com/scepter/scepter/internal/pkitest/fixture"
	"github.com/scepter/scepter/internal/server"
)

// hsmTokens are this test binary's SoftHSM2 tokens, made on the first
// Take only (see softhsmtest.Pool).
var hsmTokens *softhsmtest.Pool

func TestMain(m *testing.M) { softhsmtest.Main(m, &hsmTokens, 2) }

// scriptedSigner is a key whose Sign fails with whatever err holds now.
type scriptedSigner struct {
	crypto.Signer
	err *error
}

func (s scriptedSigner) Sign(r io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	if *s.err != nil {
		return nil, *s.err
	}
	return s.Signer.Sign(r, d, o)
}

// readiness is a checker of the key checks over k, logging to a buffer,
// and a way to probe /readyz once its cached outcome is stale.
func readiness(t *testing.T, clock *pkitest.Clock, k health.Keys) (probe func() (int, string), logs *bytes.Buffer) {
	t.Helper()
	logs = &bytes.Buffer{}
	c := health.New(health.Options{Clock: clock, Log: slog.New(slog.NewTextHandler(logs, nil))},
		health.IssuerKey(k, clock), health.RAKey(k, clock, nil))
	mux, err := server.PlainMux(server.Handlers{Health: c})
	if err != nil {
		t.Fatal(err)
	}
	return func() (int, string) {
		clock.Advance(health.DefaultCacheFor)
		return get(t, mux, "/readyz")
	}, logs
}

// A key check that keeps failing is logged again when its cause changes,
// once per change, and /readyz names the cause when it is one it knows
// (PIN refused, token not found, key not found): a load balancer that
// follows /readyz sends no request whose error would tell (r129 O1). The
// steps are those of a token lost, then back with a PIN that is now wrong.
func TestKeyCheckCauseChangeIsLoggedOnce(t *testing.T) {
	p := fixture.New(t, fixture.Options{})
	issuer, _ := p.Authority.Active(p.Clock.Now())
	var signErr error
	probe, logs := readiness(t, p.Clock, keysWith{real: p.Authority, issuer: scriptedSigner{issuer.Signer, &signErr}})
	const token = `the PKCS#11 token "hsm3" of /usr/lib/softhsm/libsofthsm2.so`
	lost := errors.New("temporarily unavailable: keys: " + token + ": the token is not open; opening it again: failed to initialize module: CKR_GENERAL_ERROR")
	wrongPIN := fmt.Errorf("temporarily unavailable: opening it again: keys: %w for %s (the PIN of /etc/scepter/pin): CKR_PIN_INCORRECT", keys.ErrWrongPIN, token)
	notAgain := fmt.Errorf("temporarily unavailable: opening it again: keys: %w for %s: the token refused the PIN of /etc/scepter/pin before", keys.ErrWrongPIN, token)
	for i, step := range []struct {
		err    error
		state  string // of the issuing CA key on /readyz
		logged string // the new ERROR line's message; "" for none
	}{
		{nil, "ok", ""},
		{lost, "failed", "not ready: issuing CA key check failed"},
		{lost, "failed", ""},
		{wrongPIN, "failed: PIN refused by the token", "not ready: issuing CA key check still failing, now for another cause (issuing CA key: failed: PIN refused by the token)"},
		{notAgain, "failed: PIN refused by the token", ""},
		{notAgain, "failed: PIN refused by the token", ""},
		{fmt.Errorf("keys: %w: no token %q", keys.ErrTokenNotFound, "hsm3"), "failed: token not found",
			"not ready: issuing CA key check still failing, now for another cause (issuing CA key: failed: token not found)"},
		{fmt.Errorf("keys: no key labelled %q in %s: %w", "scepter-issuing", token, keys.ErrKeyNotFound), "failed: key not found in the token",
			"not ready: issuing CA key check still failing, now for another cause (issuing CA key: failed: key not found in the token)"},
		{nil, "ok", ""},
	} {
		signErr = step.err
		logs.Reset()
		code, body := probe()
		if want := "issuing CA key: " + step.state + "\n"; !strings.Contains(body, want) || (step.err == nil) != (code == http.StatusOK) {
			t.Errorf("step %d: /readyz %d %q, want %q", i, code, body, want)
		}
		if strings.Contains(body, "/etc/scepter") || strings.Contains(body, "CKR_") || strings.Contains(body, "hsm3") {
			t.Errorf("step %d: /readyz shows the error's text: %q", i, body)
		}
		var errorLines []string
		for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
			if strings.Contains(l, "level=ERROR") {
				errorLines = append(errorLines, l)
			}
		}
		switch {
		case step.logged == "" && len(errorLines) > 0:
			t.Errorf("step %d: logged %q, want nothing", i, errorLines)
		case step.logged != "" && (len(errorLines) != 1 || !strings.Contains(errorLines[0], fmt.Sprintf("msg=%q", step.logged))):
			t.Errorf("step %d: logged %q, want one ERROR %q", i, errorLines, step.logged)
		}
	}
}

// tokenKeys is an issuing CA whose key is in a token, and no RA.
type tokenKeys struct{ issuer *ca.Issuer }

func (k tokenKeys) Active(time.Time) (*ca.Issuer, *pki.RA) { return k.issuer, nil }

// With a real SoftHSM token: a key deleted from it while the PIN file now
// holds a wrong PIN shows "PIN refused" on /readyz (the token is opened
// again, and refuses the PIN) and logs it; the right PIN back, the check
// fails on for another cause, the key not found, which is logged once
// more, then not again while it lasts.
func TestKeyCheckCauseWithSoftHSM(t *testing.T) {
	st := hsmTokens.Take(t)
	cfg := keys.PKCS11Config{Module: st.Env.Module, TokenLabel: st.Label, PINFile: st.PINFile}
	tok, err := keys.OpenPKCS11(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tok.Close() })
	other, err := keys.OpenPKCS11(cfg) // another node's, or pkcs11-tool
	if err != nil {
		t.Fatal(err)
	}
	key, err := tok.Create("issuing", keys.P256)
	if err != nil {
		t.Fatal(err)
	}
	clock := pkitest.NewClock(fixture.Start)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "token CA"},
		NotBefore: clock.Now().Add(-time.Hour), NotAfter: clock.Now().AddDate(1, 0, 0),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	probe, logs := readiness(t, clock, tokenKeys{&ca.Issuer{Cert: cert, Signer: key}})
	if code, body := probe(); !strings.Contains(body, "issuing CA key: ok\n") {
		t.Fatalf("/readyz %d %q, want the issuing CA key ok", code, body)
	}
	writePIN := func(pin string) {
		t.Helper()
		if err := os.WriteFile(st.PINFile, []byte(pin+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writePIN("999999")
	if err := other.Remove("issuing"); err != nil {
		t.Fatal(err)
	}
	// Closed, so that the reopen below finalizes the module and logs in
	// anew: a login is the process's, not one context's.
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}
	errorLines := func() []string {
		var out []string
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, "level=ERROR") && strings.Contains(l, "issuing CA key") {
				out = append(out, l)
			}
		}
		return out
	}
	if _, body := probe(); !strings.Contains(body, "issuing CA key: failed: PIN refused by the token\n") || strings.Contains(body, "999999") {
		t.Fatalf("/readyz with the key gone and a wrong PIN: %q, want the PIN refused\n%s", body, logs)
	}
	if l := errorLines(); len(l) != 1 || !strings.Contains(l[0], "not ready: issuing CA key check failed") || !strings.Contains(l[0], "wrong PKCS#11 PIN") {
		t.Fatalf("logged %q, want one ERROR naming the refused PIN", l)
	}
	writePIN(softhsmtest.DefaultPIN)
	// The token is opened again at most once a second, by its own clock
	// (the real one): probe until it has been, for 10 s at most.
	const keyGone = "issuing CA key: failed: key not found in the token\n"
	var body string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if _, body = probe(); strings.Contains(body, keyGone) {
			break
		}
	}
	if !strings.Contains(body, keyGone) {
		t.Fatalf("/readyz with the right PIN back: %q, want %q", body, keyGone)
	}
	for range 3 {
		probe()
	}
	l := errorLines()
	if len(l) != 2 || !strings.Contains(l[1], "now for another cause (issuing CA key: failed: key not found in the token)") ||
		!strings.Contains(l[1], `no key labelled \"scepter-issuing\"`) {
		t.Errorf("logged %q, want a second ERROR, once, naming the missing key", l)
	}
}
