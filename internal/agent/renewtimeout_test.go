package agent

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/client"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pkitest"
)

// hungServer is a listener on 127.0.0.1 that accepts every connection and
// never answers on it; it returns its address.
func hungServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// A server that accepts the connection and never answers costs the
// certificates checked after it at most renew_timeout: the next
// certificate, on a working server, is renewed within the run.
func TestHungServerDoesNotHoldTheOtherCertificates(t *testing.T) {
	for _, tt := range []struct {
		protocol, url string // of the hung certificate; %s is the address
		extra         string
	}{
		{ProtocolEST, "https://%s", ""},
		{ProtocolSCEP, "http://%s/scep", "challenge_file = \"challenge.txt\"\n"},
	} {
		t.Run(tt.protocol, func(t *testing.T) {
			dir := t.TempDir()
			goodURL, ca, old, oldKey := estReenrollServer(t, epoch, http.StatusOK, "")
			for _, name := range []string{"hung", "good"} {
				writePEM(t, filepath.Join(dir, name+"-key.pem"), 0o600, oldKey)
				writePEM(t, filepath.Join(dir, name+"-cert.pem"), 0o644, nil, old)
			}
			if err := os.WriteFile(filepath.Join(dir, "challenge.txt"), []byte("secret\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			fp := client.Fingerprint(ca)
			text := fmt.Sprintf(`once_attempts = 1
renew_timeout = "300ms"

[[certificate]]
name = "hung"
protocol = %q
url = %q
ca_fingerprint = %q
key_path = "hung-key.pem"
cert_path = "hung-cert.pem"
%s
[[certificate]]
name = "good"
protocol = "est"
url = %q
ca_fingerprint = %q
key_path = "good-key.pem"
cert_path = "good-cert.pem"
`, tt.protocol, fmt.Sprintf(tt.url, hungServer(t)), fp, tt.extra, goodURL, fp)
			cfg, err := ParseConfig([]byte(text), dir)
			if err != nil {
				t.Fatalf("config:\n%s\n%v", text, err)
			}
			logs := &syncBuffer{}
			// Due: past two thirds of the certificate's hour.
			clock := pkitest.NewClock(old.NotBefore.Add(50 * time.Minute))
			a := &Agent{Config: cfg, Clock: clock, Log: slog.New(slog.NewTextHandler(logs, nil)), Jitter: func() float64 { return 0.5 },
				Sleep: func(ctx context.Context, d time.Duration) error { clock.Advance(d); return ctx.Err() }}
			// Without a deadline of its own the hung renewal would run
			// into the clients' 60 s timeouts; this bounds the test.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			start := time.Now()
			err = a.RunOnce(ctx)
			elapsed := time.Since(start)
			if err == nil || !strings.Contains(err.Error(), "1 of 2 certificates failed: hung") {
				t.Errorf("RunOnce: %v, want only hung to fail", err)
			}
			if elapsed > 10*time.Second {
				t.Errorf("the run took %s; the hung server should cost about renew_timeout (300ms)", elapsed)
			}
			if !strings.Contains(logs.String(), "timed out after 300ms (renew_timeout)") {
				t.Errorf("the log does not say the attempt timed out:\n%s", logs)
			}
			certs, err := keys.LoadCertFile(filepath.Join(dir, "good-cert.pem"))
			if err != nil {
				t.Fatal(err)
			}
			if certs[0].Equal(old) {
				t.Errorf("the certificate on the working server was not renewed:\n%s", logs)
			}
		})
	}
}

// hangingRenewer is a server that accepts and never answers: each call
// waits for its context to end, and records the deadline it was given.
type hangingRenewer struct {
	mu        sync.Mutex
	deadlines map[string]time.Time // by call: "CACerts", "Renew"
}

func (h *hangingRenewer) hang(ctx context.Context, call string) error {
	d, ok := ctx.Deadline()
	if !ok {
		return fmt.Errorf("%s: no deadline", call)
	}
	h.mu.Lock()
	h.deadlines[call] = d
	h.mu.Unlock()
	<-ctx.Done()
	return fmt.Errorf("%s: %w", call, ctx.Err())
}

func (h *hangingRenewer) Renew(ctx context.Context, r RenewRequest) (*RenewResult, error) {
	return nil, h.hang(ctx, "Renew")
}

func (h *hangingRenewer) CACerts(ctx context.Context, c *Certificate, r RenewRequest) ([]*x509.Certificate, error) {
	return nil, h.hang(ctx, "CACerts")
}

// The check that the certificate in place chains to the pinned CA (a CA
// certificates fetch, for files that `scepter enroll` wrote) is part of the
// attempt: it shares renew_timeout's deadline with the renewal, so a server
// that never answers costs one renew_timeout, not two. A fetch that used
// it all leaves nothing for the renewal, which is not tried: the attempt's
// error names the fetch.
func TestRenewTimeoutBoundsThePinnedCACheckToo(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.clock.Set(f.first.NotAfter.Add(-time.Hour)) // due
	f.cfg.RenewTimeout = 100 * time.Millisecond
	f.cfg.OnceAttempts = 1
	h := &hangingRenewer{deadlines: map[string]time.Time{}}
	f.agent.Renewers = map[string]Renewer{ProtocolSCEP: h}
	err := f.agent.RunOnce(context.Background())
	if err == nil {
		t.Fatal("RunOnce succeeded against a server that never answers")
	}
	if !strings.Contains(f.logs.String(), "timed out after 100ms (renew_timeout): the CA certificates fetch (to check the certificate in place) took it all (CACerts did not finish)") {
		t.Errorf("the log does not say the CA certificates fetch used the attempt's time:\n%s", f.logs)
	}
	// Nothing said before that contradicts it (r92 D10).
	for _, not := range []string{"going on without that check", `msg=renewing`} {
		if strings.Contains(f.logs.String(), not) {
			t.Errorf("the log says %q, though the attempt asked nothing:\n%s", not, f.logs)
		}
	}
	if !strings.Contains(f.logs.String(), "the fetch took the whole renew_timeout, so this attempt asks the server nothing") {
		t.Errorf("the fetch's warning does not say the attempt ends:\n%s", f.logs)
	}
	if _, fetched := h.deadlines["CACerts"]; !fetched {
		t.Fatalf("calls made: %v; want the CA certificates fetched", h.deadlines)
	}
	if _, renewed := h.deadlines["Renew"]; renewed {
		t.Error("a renewal was asked for after the CA certificates fetch used all of renew_timeout")
	}
}

// A server that accepts the connection and never answers holds the CA
// certificates fetch (the check of the certificate in place) for all of
// renew_timeout: the attempt's error says so, naming the step that did
// not finish, not a connection of the renewal that never got its turn.
func TestRenewTimeoutSpentOnTheCAFetchIsNamed(t *testing.T) {
	for _, tt := range []struct {
		protocol, url string // %s is the hung server's address
		want          string
	}{
		{ProtocolEST, "https://%s", "took it all (TLS handshake with %s did not finish)"},
		{ProtocolSCEP, "http://%s/scep", "took it all (GET http://%s/scep?operation=GetCACert"},
	} {
		t.Run(tt.protocol, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{})
			addr := hungServer(t)
			f.agent.Renewers = nil // the real clients
			f.cert().Protocol, f.cert().URL = tt.protocol, fmt.Sprintf(tt.url, addr)
			f.cfg.RenewTimeout = 300 * time.Millisecond
			f.cfg.OnceAttempts = 1
			f.clock.Set(f.first.NotAfter.Add(-time.Hour)) // due
			if err := f.agent.RunOnce(context.Background()); err == nil {
				t.Fatal("RunOnce succeeded against a server that never answers")
			}
			var failed string
			for _, line := range strings.Split(f.logs.String(), "\n") {
				if strings.Contains(line, "level=ERROR msg=failed") {
					failed = line
				}
			}
			want := "timed out after 300ms (renew_timeout): the CA certificates fetch (to check the certificate in place) " + fmt.Sprintf(tt.want, addr)
			if !strings.Contains(failed, want) || strings.Contains(failed, "connecting to") {
				t.Errorf("the attempt failed with\n%s\nwant it to say %q", failed, want)
			}
		})
	}
}
