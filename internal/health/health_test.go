package health_test

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/health"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/pkitest/fixture"
	"github.com/scepter/scepter/internal/server"
	"github.com/scepter/scepter/internal/store/sqlite"
)

// get answers one request through h.
func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	b, _ := io.ReadAll(rec.Result().Body)
	if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("GET %s: Cache-Control %q, want no-store", path, cc)
	}
	return rec.Code, string(b)
}

// checker is the server's readiness: the fixture's store, CA and RA.
func checker(p *fixture.PKI, st health.Pinger, k health.Keys) *health.Checker {
	return health.New(health.Options{Clock: p.Clock},
		health.Store(st), health.IssuerKey(k, p.Clock), health.RAKey(k, p.Clock, nil))
}

// /healthz and /readyz answer on both listeners, unauthenticated.
func TestHealthzAndReadyzOnBothListeners(t *testing.T) {
	for _, keyType := range []string{"p256", "rsa2048"} {
		p := fixture.New(t, fixture.Options{KeyType: keyType})
		h := server.Handlers{Health: checker(p, p.Store, p.Authority)}
		for name, build := range map[string]func(server.Handlers) (http.Handler, error){"plain": server.PlainMux, "TLS": server.TLSMux} {
			mux, err := build(h)
			if err != nil {
				t.Fatal(err)
			}
			if code, body := get(t, mux, "/healthz"); code != http.StatusOK || body != "ok\n" {
				t.Errorf("%s %s listener: /healthz: %d %q, want 200 ok", keyType, name, code, body)
			}
			code, body := get(t, mux, "/readyz")
			if code != http.StatusOK || !strings.HasPrefix(body, "ready\n") {
				t.Errorf("%s %s listener: /readyz: %d %q, want 200 ready", keyType, name, code, body)
			}
			for _, check := range []string{"store: ok", "issuing CA key: ok", "RA key: ok"} {
				if !strings.Contains(body, check) {
					t.Errorf("%s %s listener: /readyz does not say %q:\n%s", keyType, name, check, body)
				}
			}
		}
	}
}

// swappable is the store as readiness sees it: the test closes it and
// opens it again.
type swappable struct{ atomic.Pointer[sqlite.Store] }

func (s *swappable) Ping(ctx context.Context) error { return s.Load().Ping(ctx) }

// /readyz fails, naming the store, while the store cannot be read, and
// passes again when it is back; outcomes are reused for CacheFor.
func TestReadyzFollowsTheStore(t *testing.T) {
	p := fixture.New(t, fixture.Options{})
	st := &swappable{}
	st.Store(p.Store)
	mux, err := server.PlainMux(server.Handlers{Health: checker(p, st, p.Authority)})
	if err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, mux, "/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz with the store open: %d\n%s", code, body)
	}

	p.Store.Close()
	if code, _ := get(t, mux, "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz within the cache period: %d, want the cached 200", code)
	}
	p.Clock.Advance(health.DefaultCacheFor)
	code, body := get(t, mux, "/readyz")
	if code != http.StatusServiceUnavailable || !strings.HasPrefix(body, "not ready: store\n") || !strings.Contains(body, "store: failed") {
		t.Errorf("/readyz with the store closed: %d %q, want 503 naming the store", code, body)
	}
	for _, leak := range []string{"sqlite", "closed", p.Dir} {
		if strings.Contains(body, leak) {
			t.Errorf("/readyz shows the error (%q) to anyone:\n%s", leak, body)
		}
	}
	if code, _ := get(t, mux, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz with the store closed: %d, want 200 (the process serves)", code)
	}

	back, err := sqlite.Open(context.Background(), filepath.Join(p.Dir, "scepter.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { back.Close() })
	st.Store(back)
	p.Clock.Advance(health.DefaultCacheFor)
	if code, body := get(t, mux, "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz with the store back: %d\n%s", code, body)
	}
}

// keysWith is the fixture's CA with its issuer's or RA's signer replaced.
type keysWith struct {
	real       *ca.Authority
	issuer, ra crypto.Signer // nil: the real one
}

func (k keysWith) Active(now time.Time) (*ca.Issuer, *pki.RA) {
	issuer, ra := k.real.Active(now)
	if k.issuer != nil {
		issuer = &ca.Issuer{Cert: issuer.Cert, Signer: k.issuer, ID: issuer.ID, Chain: issuer.Chain}
	}
	if k.ra != nil {
		ra = &pki.RA{Cert: ra.Cert, Key: k.ra, Chain: ra.Chain, IsCA: ra.IsCA}
	}
	return issuer, ra
}

// brokenSigner is a key whose device stopped answering.
type brokenSigner struct{ crypto.Signer }

func (brokenSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("CKR_DEVICE_REMOVED")
}

// /readyz fails, naming the key, when the issuing CA's or the RA's signer
// cannot sign, or signs with another key than its certificate's.
func TestReadyzFailsWhenASignerCannotSign(t *testing.T) {
	p := fixture.New(t, fixture.Options{})
	issuer, ra := p.Authority.Active(p.Clock.Now())
	other, err := keys.Generate(keys.P256)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		keys   keysWith
		failed string
	}{
		{"issuer key gone", keysWith{real: p.Authority, issuer: brokenSigner{issuer.Signer}}, "issuing CA key"},
		{"RA key gone", keysWith{real: p.Authority, ra: brokenSigner{ra.Key}}, "RA key"},
		{"issuer signs with another key", keysWith{real: p.Authority, issuer: other}, "issuing CA key"},
	} {
		mux, err := server.TLSMux(server.Handlers{Health: checker(p, p.Store, c.keys)})
		if err != nil {
			t.Fatal(err)
		}
		code, body := get(t, mux, "/readyz")
		if code != http.StatusServiceUnavailable || !strings.HasPrefix(body, "not ready: "+c.failed+"\n") || !strings.Contains(body, c.failed+": failed") {
			t.Errorf("%s: /readyz %d %q, want 503 naming %q", c.name, code, body, c.failed)
		}
		if strings.Contains(body, "CKR_") {
			t.Errorf("%s: /readyz shows the signer's error:\n%s", c.name, body)
		}
	}
}

// A storm of probes runs the checks once per cache period: one store read
// and one signature per key, not one per probe.
func TestReadyzProbeStormRunsChecksOnce(t *testing.T) {
	p := fixture.New(t, fixture.Options{})
	var runs atomic.Int64
	counted := health.Check{Name: "counted", Run: func(context.Context) error { runs.Add(1); return nil }}
	c := health.New(health.Options{Clock: p.Clock}, counted, health.IssuerKey(p.Authority, p.Clock))
	mux, err := server.PlainMux(server.Handlers{Health: c})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if code, body := get(t, mux, "/readyz"); code != http.StatusOK {
				t.Errorf("/readyz: %d\n%s", code, body)
			}
		})
	}
	wg.Wait()
	if n := runs.Load(); n != 1 {
		t.Errorf("50 probes ran the checks %d times, want once", n)
	}
	p.Clock.Advance(health.DefaultCacheFor - time.Millisecond)
	get(t, mux, "/readyz")
	if n := runs.Load(); n != 1 {
		t.Errorf("a probe within the cache period ran the checks again (%d runs)", n)
	}
	p.Clock.Advance(time.Millisecond)
	get(t, mux, "/readyz")
	if n := runs.Load(); n != 2 {
		t.Errorf("a probe after the cache period: %d runs, want 2", n)
	}
}

// A check that does not answer fails when the timeout is over, and the
// probe answers all the same.
func TestReadyzCheckThatHangs(t *testing.T) {
	p := fixture.New(t, fixture.Options{})
	// It ignores its context, as a stuck driver call would.
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	hang := health.Check{Name: "store", Run: func(context.Context) error { <-release; return nil }}
	c := health.New(health.Options{Clock: p.Clock, Timeout: 50 * time.Millisecond}, hang, health.IssuerKey(p.Authority, p.Clock))
	st := c.Status()
	if st.Ready() || !errors.Is(st.Checks[0].Err, health.ErrTimedOut) || st.Checks[1].Err != nil {
		t.Errorf("status %+v: want the hanging check timed out and the key ok", st)
	}
	mux, err := server.PlainMux(server.Handlers{Health: c})
	if err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, mux, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "store: timed out") {
		t.Errorf("/readyz: %d %q, want 503 with the store timed out", code, body)
	}
}

// A check that panics fails; the probe still answers.
func TestReadyzCheckThatPanics(t *testing.T) {
	p := fixture.New(t, fixture.Options{})
	c := health.New(health.Options{Clock: p.Clock}, health.Check{Name: "RA key", Run: func(context.Context) error { panic("HSM library") }})
	if st := c.Status(); st.Ready() || st.Checks[0].Err == nil {
		t.Errorf("status %+v: want the panicking check failed", st)
	}
}

// /readyz fails, naming which, once the issuing CA's or the RA's
// certificate has expired: its key still signs, but nothing it issues or
// signs is accepted any more (enrollments get 503 meanwhile).
func TestReadyzFailsWhenACertificateHasExpired(t *testing.T) {
	p := fixture.New(t, fixture.Options{})
	issuer, ra := p.Authority.Active(p.Clock.Now())
	for _, c := range []struct {
		name   string
		at     time.Time
		failed string
	}{
		{"the RA's certificate expired", ra.Cert.NotAfter, "RA key"},
		{"the issuing CA's certificate expired", issuer.Cert.NotAfter, "issuing CA key"},
	} {
		p.Clock.Set(c.at)
		mux, err := server.TLSMux(server.Handlers{Health: checker(p, p.Store, p.Authority)})
		if err != nil {
			t.Fatal(err)
		}
		code, body := get(t, mux, "/readyz")
		if code != http.StatusServiceUnavailable || !strings.Contains(body, c.failed+": failed") {
			t.Errorf("%s: /readyz %d %q, want 503 naming %q", c.name, code, body, c.failed)
		}
	}
}

// raStatus answers RAUsable with err.
type raStatus struct{ err error }

func (s raStatus) RAUsable(context.Context, *pki.RA) error { return s.err }

// The RA check fails while the RA's status says it may not be used (its
// certificate revoked and not yet replaced), naming why.
func TestRAKeyFollowsTheRAStatus(t *testing.T) {
	p := fixture.New(t, fixture.Options{})
	for _, tc := range []struct {
		name    string
		status  health.RAStatus
		wantErr string
	}{
		{"no status", nil, ""},
		{"usable", raStatus{}, ""},
		{"revoked", raStatus{errors.New("the RA certificate 1f is revoked")}, "the RA certificate 1f is revoked"},
	} {
		err := health.RAKey(p.Authority, p.Clock, tc.status).Run(context.Background())
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: %v, want %q", tc.name, err, tc.wantErr)
		}
	}
}

// TestReadyzSaysWhatIsWrongWithTheRA: a revoked RA fails /readyz as its
// certificate, named by its serial and issuing CA, in fixed words, not as
// "RA key: failed" (the key signs still); an RA renewed on another node
// that this one lacks fails as the RA key lacked; a status the store
// holds but cannot give as the RA certificate's status, not its key; a
// store out of reach not at all (the store check's to name: see
// TestReadyzBlamesTheStoreNotTheRAKey). The reason goes to the log only.
func TestReadyzSaysWhatIsWrongWithTheRA(t *testing.T) {
	p := fixture.New(t, fixture.Options{})
	issuer, ra := p.Authority.Active(p.Clock.Now())
	// The revoked RA is named by its serial and its issuing CA.
	named := fmt.Sprintf("serial %s of issuing CA %q (%s)", pki.SerialText(ra.Cert.SerialNumber), issuer.Cert.Subject.String(), issuer.ID[:16])
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"revoked", health.RAProblem(health.ErrRARevoked, errors.New("the RA certificate 1f is revoked; a new one is issued within a minute")),
			"not ready: RA certificate\nstore: ok\nissuing CA key: ok\nRA certificate: " + named + " revoked, not yet replaced (the log says why)\n"},
		{"renewed on another node", health.RAProblem(health.ErrRALacked, errors.New("the store records SCEP RA certificate 2e, renewed by node-a, and this node lacks its key")),
			"not ready: RA key\nstore: ok\nissuing CA key: ok\nRA key: lacking the RA renewed on another node (the log says how to bring it here)\n"},
		{"the store unreadable", errors.New("reading the inventory: database disk image is malformed"),
			"not ready: RA certificate\nstore: ok\nissuing CA key: ok\nRA certificate: status unreadable in the store (the log says why)\n"},
	} {
		c := health.New(health.Options{Clock: p.Clock}, health.Store(p.Store), health.IssuerKey(p.Authority, p.Clock),
			health.RAKey(p.Authority, p.Clock, raStatus{tc.err}))
		mux, err := server.TLSMux(server.Handlers{Health: c})
		if err != nil {
			t.Fatal(err)
		}
		if code, body := get(t, mux, "/readyz"); code != http.StatusServiceUnavailable || body != tc.want {
			t.Errorf("%s: /readyz: %d %q, want 503 %q", tc.name, code, body, tc.want)
		}
	}
}
